"""`dmask latency`, the latency harness (client/latency), on short runs with in-process relays.

No timing thresholds: the only comparison is a deliberately slowed relay against the
pass-through one in the same run.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time

import av
import numpy as np
import pytest

from client.latency import matching, runner, soak
from client.latency.clip import Clip, tagged_pts
from client.latency.relay import PassThrough, relays, tree_pids
from client.latency.session import Progress, consultations, measure
from conftest import DATA
from dmask_rt.pipeline import FrameResult
from server.app import ServeConfig

WEBCAM = DATA / "videos" / "p09_webcam.mp4"


class _SlowRelay:
    """Pass-through after sleeping 40 ms: a relay that obviously adds latency."""

    closeup_size = None

    def process(self, rgb: np.ndarray) -> FrameResult:
        time.sleep(0.04)
        return FrameResult(rgb, True, None, {"track": 40.0})

    def close(self) -> None:
        pass


def _numbered_clip(frames: int = 150) -> Clip:
    """Frames that cannot be mistaken for their neighbours, even after VP8: frame k
    lights up cell k % 8 of a 4x2 grid, at a brightness that also follows k. Longer than
    the test runs, so that it never plays backwards (where frames repeat)."""
    yuv = []
    for k in range(frames):
        rgb = np.full((480, 640, 3), 30, np.uint8)
        row, col = divmod(k % 8, 4)
        rgb[row * 240:(row + 1) * 240, col * 160:(col + 1) * 160] = 60 + (37 * k) % 180
        yuv.append(av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p").to_ndarray())
    return Clip(WEBCAM, 30.0, yuv)


def test_hop_offset_survives_drops_and_rounding() -> None:
    sent = [tagged_pts(k, 30.0) for k in range(400)]
    rng = np.random.default_rng(0)
    kept = sorted(rng.choice(np.arange(10, 400), 200, replace=False))  # the relay skipped the rest
    constant = sent[10]
    received = [(sent[k] - constant + int(rng.integers(-1, 2))) % matching.MOD for k in kept]
    assert abs(matching.hop_offset(sent, received) - constant) <= 1
    for few in range(1, matching.MIN_VOTES):  # too few to tell (a rejoined patient's first frames): no constant
        assert matching.hop_offset(sent, received[:few]) is None
    unrelated = [int(v) for v in rng.integers(0, matching.MOD, 200)]
    assert matching.hop_offset(sent, unrelated) is None


def test_frames_are_matched_to_the_camera_frames_they_show() -> None:
    clip = _numbered_clip()

    async def scenario() -> tuple[list[matching.FrameTiming], dict[int, np.ndarray], list[dict]]:
        async with relays({"pass": PassThrough}) as started:
            async with consultations(started.urls["pass"], started.login, clip, 1, keep_images=90) as opened:
                await measure(opened, 0.0, 2.5, "match", Progress(False))
                return opened[0].timings(), opened[0].doctor.images, opened[0].doctor.reports

    timings, images, reports = asyncio.run(scenario())
    assert not ServeConfig().frame_reports  # opt-in: `dmask serve` sends none
    assert {key for r in reports for key in r} == {"type", "pts", "input_pts", "seq", "received", "sent", "timings_ms"}  # no pixels
    compared = 0
    for frame in timings:
        image = images.get(frame.delivered_pts)
        if image is None:
            continue
        errors = {j: np.abs(image.astype(int) - clip.rgb(j)).mean() for j in range(max(0, frame.index - 3), frame.index + 4)}
        assert min(errors, key=errors.get) == frame.index, (frame.index, errors)
        compared += 1
    assert compared >= 30
    assert all(f.captured <= f.relay_received <= f.relay_sent <= f.delivered for f in timings)


def test_short_run_gives_numbers_and_a_slow_relay_shows_more_latency() -> None:
    async def scenario() -> dict:
        async with relays({"pass": PassThrough, "mask": _SlowRelay}) as started:
            options = runner.Options(clip=WEBCAM, seconds=3.0, warmup=1.0, progress=False)
            return await runner.run(options, started)

    result = asyncio.run(scenario())
    runs = result["side_by_side"]
    for name in ("pass", "mask"):
        run = runs[name]
        assert run["frames_captured"] > 0 and run["frames_delivered"] > 0
        assert run["fps_in"] > 0 and run["fps_out"] > 0 and run["dropped"] >= 0
        assert set(run["latency_ms"]) == {"p50", "p90", "p99", "mean", "max"}
        assert set(run["hops_ms"]) == {"to_relay", "in_relay", "to_doctor"}
        assert "encode" in run["relay_stages_ms"]
        assert len(run["series"]) == run["frames_delivered"]
    assert runs["mask"]["stages_ms"]["track"] == 40.0
    assert runs["mask"]["latency_ms"]["p50"] > runs["pass"]["latency_ms"]["p50"]
    assert runs["added_ms"]["p50"] > 0
    assert result["relay_rss_mib_start"] > 0


def test_relay_tree_keeps_children_while_threads_come_and_go() -> None:
    """The relay's CPU, memory, files and threads are read over its process tree; a worker
    started by a thread, while other threads end, must be counted at every reading."""
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            workers = [threading.Thread(target=time.sleep, args=(0.001,)) for _ in range(8)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()

    started: list[subprocess.Popen] = []
    starter = threading.Thread(target=lambda: started.append(subprocess.Popen(["sleep", "30"])))
    starter.start()
    starter.join()   # the child's parent thread has ended: it is now another thread's child
    churners = [threading.Thread(target=churn) for _ in range(2)]
    for c in churners:
        c.start()
    try:
        readings = [tree_pids(os.getpid()) for _ in range(300)]
    finally:
        stop.set()
        for c in churners:
            c.join()
        started[0].kill()
        started[0].wait()
    assert all(os.getpid() in r and started[0].pid in r for r in readings)


def test_soak_patients_rejoin_and_their_frames_are_matched_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(soak, "QUIET_END_S", 10.0)  # rejoins until 10 s before the end of a 1-minute soak

    async def scenario() -> dict:
        async with relays({"pass": PassThrough}) as started:
            clip = Clip(WEBCAM, 30.0, _numbered_clip().frames)
            result = await soak.soak(started.urls["pass"], started.login, started.pid, clip, 1.0, 2, 20.0, 1.0,
                                     Progress(False))
            return result

    result = asyncio.run(scenario())
    rejoins = result["rejoins"]
    assert rejoins["failed"] == [] and rejoins["count"] == 4          # rooms 0, 1, 0, 1 at 10, 20, 30, 40 s
    assert sorted(r["room"] for r in rejoins["each"]) == [0, 0, 1, 1]
    assert 0 < rejoins["avatar_after_s"]["max"] < 10
    late = [t for t, _ in result["series"] if t > 45]                 # after every rejoin: matched again
    assert len(late) > 2 * 30 * 10                                    # both rooms, most of 15 s at 30 fps
    assert all(0 < ms < 1000 for _, ms in result["series"])
    assert len(result["per_minute"]) == 1 and result["per_minute"][0]["fps_out_mean"] > 20
    samples = result["relay"]["samples"]
    assert len(samples) >= 5 and all(s[1] > 0 and s[2] > 0 and s[3] > 0 for s in samples)
    last = result["metrics"][-1]
    assert last["dmask_rooms"] == 2 and last["dmask_sessions"] == 4
    assert {"dmask_freezes_total", "dmask_errors_total", "dmask_frames_dropped_total"} <= set(last)
