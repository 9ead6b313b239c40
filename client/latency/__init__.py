"""`dmask latency`: what the mask costs in delay, and how many consultations one machine carries.

The harness plays both ends of consultations against a relay (`dmask serve`'s
application, started by the harness in its own process), with aiortc peers:

- `clip`: the patient's camera, a real clip played at its frame rate, every frame
  stamped with its capture time and a tagged pts.
- `doctor`: the doctor's peer, timing every received frame and collecting the relay's
  per-frame reports.
- `matching`: which camera frame each received frame came from.
- `relay`: the harness-only relays (mask on, and pass-through) in a child process.
- `session`: N concurrent consultations for a measured window; a patient may leave and
  rejoin (each connection a leg with its own constants).
- `stats`: latency percentiles, frame rates, drops, per-stage times of a window.
- `runner`: side by side (pass-through vs mask), capacity sweep.
- `soak`: consultations for many minutes, patients rejoining; the relay's memory, files,
  threads and `/metrics` over time.
- `report`: JSON, PNG plots and the one-screen summary.

Matching frames across re-encoding and the mask: pixels cannot carry an id through
the mask, so timestamps do. RTP keeps a frame's pts exactly (mod 2^32) up to one
constant per hop (aiortc's receiver counts from the first frame it got). The relay,
started with `ServeConfig.frame_reports`, tells the doctor for every new masked frame
its output pts and the pts of the camera frame it came from (ids and times only). Each
hop's constant is the most frequent difference between the pts sent and the pts seen;
the patient adds a pseudo-random tag of up to a third of a frame interval to each pts,
so that only the right constant lines the two series up.
"""
