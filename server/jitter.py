"""Release a received video frame as soon as its last packet is in (aiortc internals).

aiortc's jitter buffer hands a video frame to the decoder only when the first packet of
the *next* frame arrives: one frame interval (33 ms at 30 fps) of delay on every
receive hop, twice per consultation path that crosses the relay twice. The RTP marker
bit flags the last packet of a video frame (RFC 7741 for VP8, RFC 6184 for H.264), so
a frame whose packets are all present from the buffer's origin up to the marked one is
complete and can go at once.

`install()` replaces the `JitterBuffer` that `aiortc.rtcrtpreceiver` instantiates with
`MarkerJitterBuffer`, a subclass that only adds that early release for video; audio and
every loss or reordering case keep aiortc's own behaviour (a frame with a gap is not
complete, so it waits as before). Written against aiortc 1.16 (`JitterBuffer._packets`,
`_origin`, `_capacity`, `remove`, and the receiver's module-level `JitterBuffer` name);
`install()` checks those are there and otherwise leaves aiortc untouched.
"""
from __future__ import annotations

import logging

import aiortc.rtcrtpreceiver
from aiortc.jitterbuffer import JitterBuffer, JitterFrame

log = logging.getLogger(__name__)


class MarkerJitterBuffer(JitterBuffer):
    """aiortc's JitterBuffer, plus: a video frame leaves with its marked last packet."""

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        frame = super()._remove_frame(sequence_number)
        if frame is None and self._is_video:
            frame = self._complete_frame()
        return frame

    def _complete_frame(self) -> JitterFrame | None:
        assert self._origin is not None
        packets = []
        for count in range(self._capacity):
            packet = self._packets[(self._origin + count) % self._capacity]
            if packet is None or (packets and packet.timestamp != packets[0].timestamp):
                return None  # a gap, or a frame without its marked packet: wait as aiortc does
            packets.append(packet)
            if packet.marker:
                self.remove(count + 1)
                return JitterFrame(data=b"".join(p._data for p in packets), timestamp=packet.timestamp)  # type: ignore[attr-defined]
        return None


def install() -> bool:
    """Use `MarkerJitterBuffer` in every RTCRtpReceiver created from now on; True if done."""
    probe = JitterBuffer(capacity=2, is_video=True)
    expected = all(hasattr(probe, name) for name in ("_packets", "_origin", "_capacity", "_is_video", "remove"))
    if not expected or getattr(aiortc.rtcrtpreceiver, "JitterBuffer", None) not in (JitterBuffer, MarkerJitterBuffer):
        log.warning("aiortc's jitter buffer is not the expected one: keeping it (one frame of extra delay)")
        return False
    aiortc.rtcrtpreceiver.JitterBuffer = MarkerJitterBuffer  # type: ignore[misc]
    return True
