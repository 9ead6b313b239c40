"""Numbers of one measured window: latency percentiles, frame rates, drops, stage times."""
from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from .matching import FrameTiming

PERCENTILES = (50, 90, 99)


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99, mean and max (ms), rounded; empty if there are no values."""
    if not len(values):
        return {}
    v = np.asarray(values, float)
    out = {f"p{p}": float(np.percentile(v, p)) for p in PERCENTILES}
    out |= {"mean": float(v.mean()), "max": float(v.max())}
    return {k: round(x, 2) for k, x in out.items()}


def window(timings: Sequence[FrameTiming], sent: Sequence[tuple[int, int, float]],
           arrivals: Sequence[tuple[float, int]], begin: float, end: float) -> dict[str, Any]:
    """The camera frames captured in [begin, end): how many arrived, how fast and how late.

    `dropped`: captured frames that never reached the doctor (the relay's latest-frame-wins
    skips, or losses). `fps_received` counts every frame the doctor got, repeats included.
    """
    seconds = end - begin
    captured = sum(begin <= t < end for _, _, t in sent)
    frames = [f for f in timings if begin <= f.captured < end]
    stages: dict[str, list[float]] = defaultdict(list)
    for f in frames:
        for stage, ms in f.timings_ms.items():
            stages[stage].append(ms)
    return {
        "seconds": round(seconds, 2),
        "frames_captured": captured,
        "frames_delivered": len(frames),
        "dropped": captured - len(frames),
        "fps_in": round(captured / seconds, 2),
        "fps_out": round(len(frames) / seconds, 2),
        "fps_received": round(sum(begin <= t < end for t, _ in arrivals) / seconds, 2),
        "latency_ms": percentiles([f.latency_ms for f in frames]),
        # Where the time goes: camera -> relay (patient encode, network, relay decode),
        # inside the relay (waiting + masking), relay -> doctor (encode, network, decode).
        "hops_ms": {
            "to_relay": percentiles([(f.relay_received - f.captured) * 1e3 for f in frames]),
            "in_relay": percentiles([(f.relay_sent - f.relay_received) * 1e3 for f in frames]),
            "to_doctor": percentiles([(f.delivered - f.relay_sent) * 1e3 for f in frames]),
        },
        "stages_ms": {stage: round(float(np.mean(ms)), 2) for stage, ms in sorted(stages.items())},
    }


def stage_totals(metrics_text: str) -> dict[str, tuple[float, int]]:
    """stage -> (sum ms, count) from the relay's /metrics text."""
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for kind, stage, value in re.findall(r'dmask_stage_milliseconds_(sum|count)\{stage="(\w+)"\} (\S+)', metrics_text):
        totals[stage][0 if kind == "sum" else 1] = float(value)
    return {stage: (s, int(c)) for stage, (s, c) in totals.items()}


def stage_means(before: dict[str, tuple[float, int]], after: dict[str, tuple[float, int]]) -> dict[str, float]:
    """Mean ms per stage between two `stage_totals` readings."""
    out = {}
    for stage, (total, count) in after.items():
        total0, count0 = before.get(stage, (0.0, 0))
        if count > count0:
            out[stage] = round((total - total0) / (count - count0), 2)
    return out
