"""Process-wide counters of the relay, rendered in the Prometheus text format (0.0.4).

Each room worker process counts its own; the front adds the running workers' snapshots
to its /metrics and absorbs a worker's totals when it ends.

Counters only grow; rates ("frames per second") are also given as gauges over a short
sliding window so that a plain `curl /metrics` answers "how is it doing right now".
"""
from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Sequence

from aiohttp import web

RATE_WINDOW_S = 5.0
FREEZE_S = 0.5  # a doctor's avatar that shows no new frame this long, with the camera sending, froze


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
        self.freezes = 0
        self.errors = 0
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

    def freeze(self) -> None:
        with self._lock:
            self.freezes += 1

    def error(self) -> None:
        with self._lock:
            self.errors += 1

    def stage(self, name: str, ms: float) -> None:
        """One measurement of a per-frame stage (track, fit, render, convert, encode, ...)."""
        with self._lock:
            self._stage_sum_ms[name] += ms
            self._stage_count[name] += 1
            self._stage_last_ms[name] = ms

    def snapshot(self) -> dict:
        """Counters, current rates and stage times as JSON values: a room worker's, for the front."""
        now = time.monotonic()
        with self._lock:
            return {"frames_in": self.frames_in, "frames_out": self.frames_out, "frames_dropped": self.frames_dropped,
                    "frames_no_face": self.frames_no_face, "freezes": self.freezes, "errors": self.errors, "rate_in": self._rate_in.per_second(now),
                    "rate_out": self._rate_out.per_second(now), "stage_sum_ms": dict(self._stage_sum_ms),
                    "stage_count": dict(self._stage_count), "stage_last_ms": dict(self._stage_last_ms)}

    def absorb(self, snapshot: dict) -> None:
        """Add a finished worker's counters and stage sums to these, so that totals never go back."""
        with self._lock:
            self.frames_in += snapshot["frames_in"]
            self.frames_out += snapshot["frames_out"]
            self.frames_dropped += snapshot["frames_dropped"]
            self.frames_no_face += snapshot["frames_no_face"]
            self.freezes += snapshot["freezes"]
            self.errors += snapshot["errors"]
            for stage, ms in snapshot["stage_sum_ms"].items():
                self._stage_sum_ms[stage] += ms
                self._stage_count[stage] += snapshot["stage_count"][stage]

    def render(self, gauges: dict[str, tuple[str, float | list[tuple[str, float]]]], workers: Sequence[dict] = ()) -> str:
        """The exposition text of this process's counters plus the running room workers'
        `workers` snapshots; `gauges` adds name -> (help, value, or [(labels, value)]) from the caller."""
        total = self.snapshot()
        for snapshot in workers:
            for key in ("frames_in", "frames_out", "frames_dropped", "frames_no_face", "freezes", "errors", "rate_in", "rate_out"):
                total[key] += snapshot[key]
            for stage, ms in snapshot["stage_sum_ms"].items():
                total["stage_sum_ms"][stage] = total["stage_sum_ms"].get(stage, 0.0) + ms
                total["stage_count"][stage] = total["stage_count"].get(stage, 0) + snapshot["stage_count"][stage]
            total["stage_last_ms"].update(snapshot["stage_last_ms"])
        out: list[str] = []

        def metric(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(f"{name}{labels} {value:.6g}" for labels, value in samples)

        for name, (help_, value) in gauges.items():
            metric(name, "gauge", help_, value if isinstance(value, list) else [("", value)])
        metric("dmask_frames_in_total", "counter", "Patient camera frames received.", [("", total["frames_in"])])
        metric("dmask_frames_out_total", "counter", "Masked frames handed to encoders.", [("", total["frames_out"])])
        metric("dmask_frames_dropped_total", "counter", "Camera frames skipped because a newer one arrived first.", [("", total["frames_dropped"])])
        metric("dmask_frames_no_face_total", "counter", "Frames sent as the placeholder (no face tracked).", [("", total["frames_no_face"])])
        metric("dmask_freezes_total", "counter", f"Times a doctor's avatar showed no new frame for over {FREEZE_S:g} s while the camera was sending.",
               [("", total["freezes"])])
        metric("dmask_errors_total", "counter", "Errors logged (each also in the relay's log).", [("", total["errors"])])
        metric("dmask_frames_in_per_second", "gauge", f"Camera frames per second over the last {RATE_WINDOW_S:g} s.", [("", total["rate_in"])])
        metric("dmask_frames_out_per_second", "gauge", f"Masked frames per second over the last {RATE_WINDOW_S:g} s.", [("", total["rate_out"])])
        stages = sorted(total["stage_count"])
        metric("dmask_stage_milliseconds", "summary", "Per-frame time of each stage (encode: time the sender spends between frames).",
               [(f'_sum{{stage="{s}"}}', total["stage_sum_ms"][s]) for s in stages]
               + [(f'_count{{stage="{s}"}}', total["stage_count"][s]) for s in stages])
        metric("dmask_stage_last_milliseconds", "gauge", "Latest per-frame time of each stage.",
               [(f'{{stage="{s}"}}', total["stage_last_ms"][s]) for s in stages if s in total["stage_last_ms"]])
        return "\n".join(out) + "\n"


class ErrorCount(logging.Handler):
    """Counts the records logged at ERROR or above into `metrics` (an operator alerts on the rate)."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(logging.ERROR)
        self._metrics = metrics

    def emit(self, record: logging.LogRecord) -> None:
        self._metrics.error()


def count_errors(app: web.Application, metrics: Metrics) -> None:
    """While `app` runs, count this process's ERROR log records into `metrics`."""
    handler = ErrorCount(metrics)

    async def start(app: web.Application) -> None:
        logging.getLogger().addHandler(handler)

    async def stop(app: web.Application) -> None:
        logging.getLogger().removeHandler(handler)

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
