"""The soak: several consultations for many minutes, patients leaving and joining again.

What must stay flat over a long day: latency (first minute against last, and per
minute), the relay's memory, open files and threads (the serving process and its room
workers), and what `/metrics` tells an operator (rooms, frame rates, drops, freezes,
worker restarts, errors). Each patient leaves every `rejoin_every_s` seconds (staggered
across rooms), stays away `AWAY_S` and comes back with a new connection, as a reload or
a change of network does; the doctor stays and must see the avatar again by itself.
"""
from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import aiohttp
import numpy as np

from . import stats
from .clip import Clip
from .matching import FrameTiming
from .relay import machine_cpu_seconds, tree_open_files, tree_rss_mib, tree_threads
from .session import TAIL_S, Consultation, Progress, consultations

SAMPLE_S = 10.0     # the relay's resources and /metrics read this often
AWAY_S = 5.0        # a leaving patient is away this long
QUIET_END_S = 60.0  # no one leaves in the last minute: it is compared with the first
METRICS = ("dmask_rooms", "dmask_sessions", "dmask_frames_out_per_second", "dmask_frames_dropped_total",
           "dmask_freezes_total", "dmask_errors_total", "dmask_room_workers", "dmask_room_worker_restarts")


def parse_metrics(text: str) -> dict[str, float]:
    """The unlabelled samples of `METRICS` in a /metrics text."""
    values = dict(re.findall(r"^(dmask_\w+) (\S+)$", text, re.M))
    return {name: float(values[name]) for name in METRICS if name in values}


def _slope_per_minute(samples: list[list[float]], column: int) -> float | None:
    """Least-squares growth per minute of `column` over the second half of `samples` (after start-up)."""
    half = samples[len(samples) // 2:]
    if len(half) < 3:
        return None
    t = np.array([s[0] for s in half]) / 60
    return round(float(np.polyfit(t, [s[column] for s in half], 1)[0]), 3)


def _per_minute(opened: list[Consultation], timings: list[list[FrameTiming]], begin: float, end: float) -> list[dict[str, Any]]:
    """Latency and output fps of each minute; `timings`: each consultation's matched frames."""
    rows = []
    for start in np.arange(begin, end - 1, 60.0):
        stop = min(start + 60.0, end)
        windows = [stats.window(t, c.sent(), c.doctor.arrivals, start, stop) for c, t in zip(opened, timings)]
        latencies = [f.latency_ms for t in timings for f in t if start <= f.captured < stop]
        rows.append({"minute": int((start - begin) // 60), "latency_ms": stats.percentiles(latencies),
                     "fps_out_mean": round(float(np.mean([w["fps_out"] for w in windows])), 2),
                     "fps_out_min": min(w["fps_out"] for w in windows)})
    return rows


async def soak(url: str, login: tuple[str, str], pid: int, clip: Clip, minutes: float, sessions: int,
               rejoin_every_s: float, warmup: float, progress: Progress) -> dict[str, Any]:
    """`sessions` consultations for `minutes`, each patient rejoining every `rejoin_every_s`."""
    samples: list[list[float]] = []         # [time, relay MiB, open files, threads, machine CPU %]
    metrics: list[dict[str, float]] = []    # /metrics, at the same times
    rejoins: list[dict[str, Any]] = []
    failures: list[str] = []
    async with consultations(url, login, clip, sessions) as opened, aiohttp.ClientSession() as http:
        start = time.monotonic()
        begin, end = start + warmup, start + warmup + minutes * 60
        due = [begin + rejoin_every_s * (i + 1) / sessions for i in range(sessions)]
        away: dict[int, asyncio.Task[float]] = {}
        previous = (start, machine_cpu_seconds())
        while (now := time.monotonic()) < end + TAIL_S:
            if not samples or now >= samples[-1][0] + SAMPLE_S:
                cpu = machine_cpu_seconds()
                busy = 100 * (cpu - previous[1]) / max(now - previous[0], 1e-3)
                previous = (now, cpu)
                samples.append([now, round(tree_rss_mib(pid), 1), tree_open_files(pid), tree_threads(pid), round(busy, 1)])
                async with http.get(f"{url}/metrics") as response:
                    metrics.append({"t": now, **parse_metrics(await response.text())})
            for i, consultation in enumerate(opened):
                task = away.get(i)
                if task is not None and task.done():
                    del away[i]
                    if task.exception() is not None:
                        failures.append(f"room {i}: {task.exception()!r}")
                    else:
                        rejoins.append({"room": i, "at_s": round(now - begin, 1), "avatar_after_s": round(task.result(), 3)})
                if i not in away and now >= due[i] and now < end - QUIET_END_S:
                    away[i] = asyncio.ensure_future(consultation.rejoin(AWAY_S))
                    due[i] += rejoin_every_s
            sent = sum(c.frames_sent for c in opened)
            progress.show(f"soak: {now - start:6.0f}/{end + TAIL_S - start:.0f} s  sessions {sessions}  sent {sent}  "
                          f"rejoined {len(rejoins)}  relay {samples[-1][1]:.0f} MiB {samples[-1][2]} files {samples[-1][3]} threads")
            await asyncio.sleep(1.0)
        progress.done(f"soak: done, {len(rejoins)} rejoins")
        for task in away.values():
            task.cancel()
        timings = [c.timings() for c in opened]
        per_minute = _per_minute(opened, timings, begin, end)
        series = sorted([round(f.captured - begin, 3), round(f.latency_ms, 1)]
                        for t in timings for f in t if begin <= f.captured < end)
        windows = [stats.window(t, c.sent(), c.doctor.arrivals, begin, end) for c, t in zip(opened, timings)]
    measured = [[round(t - begin, 1), *rest] for t, *rest in samples if t >= begin]
    first = [ms for t, ms in series if t < 60]
    last = [ms for t, ms in series if t >= end - begin - 60]
    after = [r["avatar_after_s"] for r in rejoins]
    return {
        "minutes": minutes, "sessions": sessions, "rejoin_every_s": rejoin_every_s, "away_s": AWAY_S,
        "sessions_windows": windows, "per_minute": per_minute, "series": series,
        "first_minute_ms": stats.percentiles(first), "last_minute_ms": stats.percentiles(last),
        "drift_ms": {p: round(stats.percentiles(last)[p] - stats.percentiles(first)[p], 2) for p in ("p50", "p99")} if first and last else {},
        "relay": {"columns": ["s", "rss_mib", "open_files", "threads", "machine_cpu_percent"], "samples": measured,
                  "rss_mib_per_minute": _slope_per_minute(measured, 1), "open_files_per_minute": _slope_per_minute(measured, 2),
                  "threads_per_minute": _slope_per_minute(measured, 3)},
        "metrics": [{**m, "t": round(m["t"] - begin, 1)} for m in metrics if m["t"] >= begin],
        "rejoins": {"count": len(rejoins), "failed": failures, "each": rejoins,
                    "avatar_after_s": {"min": min(after), "p50": round(float(np.median(after)), 3), "max": max(after)} if after else {}},
    }
