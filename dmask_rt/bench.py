"""`dmask bench`: per-stage latency of the whole job over the development clips.

Each clip runs twice, at its own size and scaled to 640x480. Stages:
decode (PyAV to RGB, timed here), track/fit/render (`FrameResult.timings_ms`)
and encode (H.264 into an in-memory .mp4, timed here); "mask" sums track, fit and
render, and "passthrough" (decode + encoding the unmasked frame, in the same run)
is the baseline the mask's cost compares with. The first `warmup`
frames of every run are processed but not timed: they include numba
compilation, GL context creation and reallocation after a size change.
"""

from __future__ import annotations

import io
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import av
import cv2
import numpy as np

from .video.decode import VideoReader
from .video.encode import PRESET, H264Encoder
from .video.outfile import write_atomically

STAGES = ("decode", "track", "fit", "render", "encode")
# Derived rows: the mask's own cost (track + fit + render, the engine's target of 6 ms)
# and, as the baseline measured in the same run on the same frames, a pass-through that
# decodes and re-encodes the camera picture unmasked.
DERIVED = ("mask", "passthrough")
SCALED_SIZE = (640, 480)
WARMUP_FRAMES = 5


def run(clips: Sequence[Path], frames: int, warmup: int = WARMUP_FRAMES) -> dict:
    """Benchmark `frames` frames of every clip at both sizes and return the report."""
    from .pipeline import Masker  # heavy: loads models, compiles the fit

    runs, pooled = [], {}
    with Masker() as masker:
        for size in (None, SCALED_SIZE):
            label = "native" if size is None else "%dx%d" % size
            pooled[label] = {stage: [] for stage in (*STAGES, *DERIVED, "total")}
            for clip in clips:
                samples, faces = _time_clip(masker, clip, size, frames, warmup)
                runs.append({"clip": clip.name, "size": label, "faces": faces, **_summary(samples)})
                for stage, values in samples.items():
                    pooled[label][stage].extend(values)
    return {
        "frames_per_clip": frames,
        "warmup_frames": warmup,
        "encoder": f"libx264 {PRESET}",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "overall": {label: _summary(samples) for label, samples in pooled.items()},
        "runs": runs,
    }


def _time_clip(masker, clip: Path, size: tuple[int, int] | None, frames: int, warmup: int) -> tuple[dict[str, list[float]], int]:
    """Per-frame milliseconds of every stage (and their sum, "total") for one clip at one size."""
    samples: dict[str, list[float]] = {stage: [] for stage in (*STAGES, *DERIVED, "total")}
    faces = 0
    with (
        VideoReader(clip) as reader,
        av.open(io.BytesIO(), "w", format="mp4") as sink,
        av.open(io.BytesIO(), "w", format="mp4") as raw_sink,
    ):
        encoder = H264Encoder(sink, reader.time_base, reader.rate)
        raw_encoder = H264Encoder(raw_sink, reader.time_base, reader.rate)
        decoded = iter(reader)
        for index in range(frames):
            start = time.perf_counter()
            frame = next(decoded, None)
            if frame is None:
                break
            decoded_at = time.perf_counter()
            rgb = frame.rgb if size is None else cv2.resize(frame.rgb, size, interpolation=cv2.INTER_AREA)
            result = masker.process(rgb)
            masked_at = time.perf_counter()
            encoder.write(result.image, frame.pts)
            done = time.perf_counter()
            raw_encoder.write(rgb, frame.pts)
            raw_done = time.perf_counter()
            if index < warmup:
                continue
            faces += result.face_found
            ms = {"decode": (decoded_at - start) * 1e3, "encode": (done - masked_at) * 1e3}
            ms.update((stage, result.timings_ms.get(stage, 0.0)) for stage in ("track", "fit", "render"))
            ms["mask"] = ms["track"] + ms["fit"] + ms["render"]
            ms["passthrough"] = ms["decode"] + (raw_done - done) * 1e3
            for stage, value in ms.items():
                samples[stage].append(value)
            # Wall time per masked frame, so the glue between stages (and the resize) counts too.
            samples["total"].append((done - start) * 1e3)
        encoder.flush()
        raw_encoder.flush()
    return samples, faces


def _summary(samples: dict[str, list[float]]) -> dict:
    """Median/p99 ms and sustainable fps (1000 / mean ms) per stage; "fps" is end to end."""
    total = np.asarray(samples["total"])
    return {
        "frames": int(total.size),
        "fps": _fps(total),
        "stages": {stage: _stats(np.asarray(values)) for stage, values in samples.items()},
    }


def _stats(ms: np.ndarray) -> dict[str, float | None]:
    if ms.size == 0:
        return {"median_ms": None, "p99_ms": None, "fps": None}
    return {"median_ms": round(float(np.median(ms)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3), "fps": _fps(ms)}


def _fps(ms: np.ndarray) -> float | None:
    return round(1000.0 / float(ms.mean()), 1) if ms.size and ms.mean() > 0 else None


def print_table(report: dict, out=sys.stderr) -> None:
    """A short human-readable table of the pooled results."""
    print(f"{'size':8} {'stage':11} {'median ms':>9} {'p99 ms':>8} {'fps':>7}", file=out)
    for label, summary in report["overall"].items():
        for stage, stats in summary["stages"].items():
            cells = _cell(stats["median_ms"], 9, 2), _cell(stats["p99_ms"], 8, 2), _cell(stats["fps"], 7, 1)
            print(f"{label:8} {stage:11} {' '.join(cells)}", file=out)
    print(f"{report['frames_per_clip']} frames a clip, first {report['warmup_frames']} untimed; encoder {report['encoder']}", file=out)


def _cell(value: float | None, width: int, decimals: int) -> str:
    return "-".rjust(width) if value is None else f"{value:{width}.{decimals}f}"


def write_json(report: dict, path: Path | None) -> None:
    """Print the report as JSON on stdout and, when `path` is given, save it there atomically."""
    text = json.dumps(report, indent=2)
    print(text)
    if path is not None:
        write_atomically(path, (text + "\n").encode())
