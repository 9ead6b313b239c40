"""Process-wide counters of the relay, rendered in the Prometheus text format (0.0.4).

Counters only grow; rates ("frames per second") are also given as gauges over a short
sliding window so that a plain `curl /metrics` answers "how is it doing right now".
"""
from __future__ import annotations

import threading
import time
from collections import defaultdict, deque

RATE_WINDOW_S = 5.0


class _Rate:
    """Events per second over the last `RATE_WINDOW_S` seconds."""

    def __init__(self) -> None:
        self._times: deque[float] = deque()

    def tick(self, now: float) -> None:
        self._times.append(now)
        self._trim(now)

    def per_second(self, now: float) -> float:
        self._trim(now)
        return len(self._times) / RATE_WINDOW_S

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] < now - RATE_WINDOW_S:
            self._times.popleft()


class Metrics:
    """Counters updated by the media path (any thread) and read by /metrics."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the masking workers update from their threads
        self.frames_in = 0
        self.frames_out = 0
        self.frames_dropped = 0
        self.frames_no_face = 0
        self._rate_in = _Rate()
        self._rate_out = _Rate()
        self._stage_sum_ms: dict[str, float] = defaultdict(float)
        self._stage_count: dict[str, int] = defaultdict(int)
        self._stage_last_ms: dict[str, float] = {}

    def frame_in(self) -> None:
        with self._lock:
            self.frames_in += 1
            self._rate_in.tick(time.monotonic())

    def frame_out(self) -> None:
        with self._lock:
            self.frames_out += 1
            self._rate_out.tick(time.monotonic())

    def dropped(self, count: int = 1) -> None:
        with self._lock:
            self.frames_dropped += count

    def no_face(self) -> None:
        with self._lock:
            self.frames_no_face += 1

    def stage(self, name: str, ms: float) -> None:
        """One measurement of a per-frame stage (track, fit, render, convert, encode, ...)."""
        with self._lock:
            self._stage_sum_ms[name] += ms
            self._stage_count[name] += 1
            self._stage_last_ms[name] = ms

    def render(self, gauges: dict[str, tuple[str, float]]) -> str:
        """The exposition text; `gauges` adds name -> (help, value) from the caller."""
        now = time.monotonic()
        out: list[str] = []

        def metric(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(f"{name}{labels} {value:.6g}" for labels, value in samples)

        for name, (help_, value) in gauges.items():
            metric(name, "gauge", help_, [("", value)])
        with self._lock:
            metric("dmask_frames_in_total", "counter", "Patient camera frames received.", [("", self.frames_in)])
            metric("dmask_frames_out_total", "counter", "Masked frames handed to encoders.", [("", self.frames_out)])
            metric("dmask_frames_dropped_total", "counter", "Camera frames skipped because a newer one arrived first.", [("", self.frames_dropped)])
            metric("dmask_frames_no_face_total", "counter", "Frames sent as the placeholder (no face tracked).", [("", self.frames_no_face)])
            metric("dmask_frames_in_per_second", "gauge", f"Camera frames per second over the last {RATE_WINDOW_S:g} s.", [("", self._rate_in.per_second(now))])
            metric("dmask_frames_out_per_second", "gauge", f"Masked frames per second over the last {RATE_WINDOW_S:g} s.", [("", self._rate_out.per_second(now))])
            stages = sorted(self._stage_count)
            metric("dmask_stage_milliseconds", "summary", "Per-frame time of each stage (encode: time the sender spends between frames).",
                   [(f'_sum{{stage="{s}"}}', self._stage_sum_ms[s]) for s in stages]
                   + [(f'_count{{stage="{s}"}}', self._stage_count[s]) for s in stages])
            metric("dmask_stage_last_milliseconds", "gauge", "Latest per-frame time of each stage.",
                   [(f'{{stage="{s}"}}', self._stage_last_ms[s]) for s in stages])
        return "\n".join(out) + "\n"
