"""`dmask serve`: the live consultation relay.

The patient's browser sends its camera over WebRTC; the relay masks every frame it can
(latest frame wins) and sends only the rendered avatar to the doctor. Audio is relayed
as it is, both ways. One module per concept:

- `app`: the aiohttp application (pages, REST API, signaling routes) and `serve()`: the front.
- `auth`: sign-in, sessions, CSRF and Origin checks, the first-account link; `accounts`:
  clinicians' accounts and sessions in the relay's SQLite file (`db`).
- `rooms`: consultation rooms, their tokens, limits and lifetime.
- `db`: the relay's SQLite file in its data directory.
- `store`: the rooms kept across restarts (links as token digests, activity, recording).
- `worker`: a room's media in a process of its own, and the front's handle on it.
- `signaling`: offer/answer for each role; which track goes to which peer.
- `media`: the masking engine and the masked video track.
- `relay`: fan-out of a remote track to bounded subscriber mailboxes.
- `recording`: masked video (+ audio) and parameters to disk, crash-safe, and their recovery.
- `ice`: ICE servers and the loopback candidate.
- `jitter`: aiortc's jitter buffer releasing a video frame on its marked last packet.
- `metrics`: counters and the Prometheus text format.
- `tls`: the self-signed certificate for `--https`.
"""
