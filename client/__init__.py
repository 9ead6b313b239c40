"""Python peers of the relay (aiortc): what the browser pages do, for tests and scripts."""
