"""The harness's measurements: side by side and capacity sweep, then the soak (`soak`).

Every measurement opens fresh consultations, lets them settle for `warmup` seconds
(the first frames of a room include loading the face models), then measures a window.
"""
from __future__ import annotations

import contextlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from . import soak, stats
from .clip import Clip, load_clip
from .relay import RelayProcess, child_relays, cpu_seconds, machine_cpu_seconds, rss_mib, tree_cpu_seconds
from .session import Consultation, Progress, consultations, measure

MIN_FPS = 25.0        # capacity: every session's output at least this ...
MAX_P99_MS = 150.0    # ... and the pooled p99 latency at most this


@dataclass
class Options:
    clip: Path
    seconds: float = 20.0
    warmup: float = 3.0
    sweep: bool = False
    max_sessions: int = 16
    soak_minutes: float | None = None
    soak_sessions: int = 4
    rejoin_every_s: float = 120.0
    progress: bool = True


async def _stage_totals(base_url: str) -> dict[str, tuple[float, int]]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base_url}/metrics") as response:
            return stats.stage_totals(await response.text())


def _series(opened: list[Consultation], begin: float, end: float) -> list[list[float]]:
    """[seconds since begin, latency ms] of every measured frame, all sessions."""
    return sorted([round(f.captured - begin, 4), round(f.latency_ms, 2)]
                  for c in opened for f in c.timings() if begin <= f.captured < end)


async def _segment(base_url: str, login: tuple[str, str], pid: int, clip: Clip, sessions: int, options: Options, label: str,
                   progress: Progress) -> dict[str, Any]:
    """`sessions` concurrent consultations measured for `options.seconds`.

    `cpu_percent` (100 = one core) tells the relay's share from the harness's own (the
    peers encode and decode too; with the relay in this process, the two are one) and
    from the whole machine's (other programs running meanwhile make a run noisy).
    """
    async with consultations(base_url, login, clip, sessions) as opened:
        before = await _stage_totals(base_url)
        readers = {"relay": lambda: tree_cpu_seconds(pid), "harness": lambda: cpu_seconds(os.getpid()), "machine": machine_cpu_seconds}
        cpu = {name: read() for name, read in readers.items()}
        started = time.monotonic()
        begin, end = await measure(opened, options.warmup, options.seconds, label, progress)
        elapsed = time.monotonic() - started
        cpu_percent = {name: round(100 * (read() - cpu[name]) / elapsed, 1) for name, read in readers.items()}
        after = await _stage_totals(base_url)
        windows = [c.window(begin, end) for c in opened]
        series = _series(opened, begin, end)
    fps = [w["fps_out"] for w in windows]
    result = windows[0] if sessions == 1 else {"sessions": windows, "latency_ms": stats.percentiles([ms for _, ms in series])}
    result |= {"fps_out_min": min(fps), "fps_out_mean": round(float(np.mean(fps)), 2)}
    return {**result, "relay_stages_ms": stats.stage_means(before, after), "cpu_percent": cpu_percent, "series": series}


async def side_by_side(relays: RelayProcess, clip: Clip, options: Options, progress: Progress) -> dict[str, Any]:
    """The clip through the pass-through relay, then the masking one; the mask's added latency."""
    runs = {name: await _segment(relays.urls[name], relays.login, relays.pid, clip, 1, options, f"mask {'off' if name == 'pass' else 'on '}", progress)
            for name in ("pass", "mask")}
    added = {p: round(runs["mask"]["latency_ms"][p] - runs["pass"]["latency_ms"][p], 2) for p in ("p50", "p99")}
    return {"pass": runs["pass"], "mask": runs["mask"], "added_ms": added}


def _meets(run: dict[str, Any]) -> bool:
    return run["fps_out_min"] >= MIN_FPS and run["latency_ms"].get("p99", float("inf")) <= MAX_P99_MS


async def sweep(url: str, login: tuple[str, str], pid: int, clip: Clip, options: Options, progress: Progress) -> dict[str, Any]:
    """1, 2, 4, ... sessions until one fails the targets, then bisect the gap."""
    runs: dict[int, dict[str, Any]] = {}

    async def measure_n(n: int) -> bool:
        run = await _segment(url, login, pid, clip, n, options, f"sweep {n:2d}", progress)
        run.pop("series")
        runs[n] = {"fps_out_min": run["fps_out_min"], "fps_out_mean": run["fps_out_mean"],
                   "latency_ms": run["latency_ms"], "relay_stages_ms": run["relay_stages_ms"],
                   "cpu_percent": run["cpu_percent"], "meets": _meets(run)}
        return runs[n]["meets"]

    good, bad, n = 0, None, 1
    while n <= options.max_sessions:
        if not await measure_n(n):
            bad = n
            break
        good, n = n, n * 2
    while bad is not None and bad - good > 1:
        middle = (good + bad) // 2
        if await measure_n(middle):
            good = middle
        else:
            bad = middle
    return {"criteria": {"min_fps": MIN_FPS, "max_p99_ms": MAX_P99_MS}, "sessions_per_machine": good,
            "limited_by_max_sessions": bad is None, "runs": {str(k): runs[k] for k in sorted(runs)}}


@contextlib.asynccontextmanager
async def _relays(relay: RelayProcess | None) -> AsyncIterator[RelayProcess]:
    if relay is not None:
        yield relay
    else:
        async with child_relays() as started:
            yield started


async def run(options: Options, relay: RelayProcess | None = None) -> dict[str, Any]:
    """Everything `options` asks for; `relay`: already running relays (default: a child process)."""
    progress = Progress(options.progress)
    clip = load_clip(options.clip)
    started = time.time()
    async with _relays(relay) as relays:
        result: dict[str, Any] = {
            "clip": {"path": str(clip.path), "fps": round(clip.fps, 3), "frames": len(clip.frames), "size": [clip.frames[0].shape[1], clip.frames[0].shape[0] * 2 // 3]},
            "machine": {"cpus": os.cpu_count()},
            "relay_rss_mib_start": round(rss_mib(relays.pid), 1),
            "side_by_side": await side_by_side(relays, clip, options, progress),
        }
        if options.sweep:
            result["sweep"] = await sweep(relays.urls["mask"], relays.login, relays.pid, clip, options, progress)
        if options.soak_minutes:
            result["soak"] = await soak.soak(relays.urls["mask"], relays.login, relays.pid, clip, options.soak_minutes,
                                             options.soak_sessions, options.rejoin_every_s, options.warmup, progress)
        result["relay_rss_mib_end"] = round(rss_mib(relays.pid), 1)
    result["wall_seconds"] = round(time.time() - started, 1)
    return result
