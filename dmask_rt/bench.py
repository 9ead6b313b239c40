"""`dmask bench`: per-stage latency of the whole job over the development clips.

Each clip runs twice, at its own size and scaled to 640x480. Stages:
decode (PyAV to RGB, timed here), track/fit/render (`FrameResult.timings_ms`)
and encode (H.264 into an in-memory .mp4, timed here); "mask" sums track, fit and
render, and "passthrough" (decode + encoding the unmasked frame, in the same run)
is the baseline the mask's cost compares with. The first `warmup`
frames of every run are processed but not timed: they include numba
compilation, GL context creation and reallocation after a size change.

`dmask bench --closeup` instead weighs the ways of sending the eye close-up
(`run_closeup`).
"""

from __future__ import annotations

import fractions
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


# --- `dmask bench --closeup`: how the eye close-up should travel -------------------------

CLOSEUP_SIZES = ((960, 360), (640, 240))
VP8_TIME_BASE = fractions.Fraction(1, 90000)
VP8_FRAME_TICKS = 3000  # ticks between frames at 30 fps


def run_closeup(clips: Sequence[Path], frames: int, warmup: int = WARMUP_FRAMES) -> dict:
    """Cost of the eye close-up per way of sending it, on the clips scaled to 640x480.

    Per frame with a face, each close-up size in its own pass over the clips:
      (a) a second video track: the close-up's render plus its VP8 encode;
      (b) part of the avatar's frame: the render, stacking the avatar over the close-up
          (the avatar centred on the close-up's width if that is wider), and the
          stacked frame's encode minus the avatar's own encode, both in the same pass;
      (c) drawn in the browser from the parameters: nothing on the server.
    Encoding is aiortc's VP8 (`Vp8Encoder`, as the relay's senders, at its default
    bitrate), one encoder per stream, timed from the RGB frame as the relay hands it
    over. Each stream is decoded again (untimed) for its bytes and the close-up's PSNR.
    """
    from .pipeline import Masker

    pooled = {}
    with Masker() as masker:
        for size in CLOSEUP_SIZES:
            masker.closeup_size = size
            samples: dict[str, list[float]] = {}
            for clip in clips:
                masker.tracker.reset()
                _time_closeup_clip(masker, clip, frames, warmup, samples)
            pooled["%dx%d" % size] = {
                key: _stats(np.asarray(values)) if key.endswith("_ms") else round(float(np.median(values)), 1)
                for key, values in samples.items()
            }
    return {"frames_per_clip": frames, "warmup_frames": warmup, "avatar_size": "%dx%d" % SCALED_SIZE,
            "encoder": "aiortc Vp8Encoder, default bitrate", "machine": {"cpus": os.cpu_count()}, "closeup": pooled}


class _Vp8Stream:
    """One aiortc VP8 sender's encoder and a receiver's decoder, frame by frame."""

    def __init__(self) -> None:
        from aiortc.codecs.vpx import Vp8Decoder, Vp8Encoder

        self.encoder, self.decoder, self.pts = Vp8Encoder(), Vp8Decoder(), 0

    def send(self, rgb: np.ndarray) -> tuple[float, list[bytes]]:
        """Encode one frame as the relay does: (milliseconds, RTP payloads)."""
        start = time.perf_counter()
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts, frame.time_base = self.pts, VP8_TIME_BASE
        payloads, _ = self.encoder.encode(frame)
        ms = (time.perf_counter() - start) * 1e3
        self.pts += VP8_FRAME_TICKS
        return ms, payloads

    def receive(self, payloads: list[bytes]) -> np.ndarray:
        """Decode one frame's payloads back to RGB."""
        from aiortc.codecs.vpx import vp8_depayload
        from aiortc.jitterbuffer import JitterFrame

        data = b"".join(vp8_depayload(p) for p in payloads)
        (frame,) = self.decoder.decode(JitterFrame(data, self.pts))
        return frame.to_ndarray(format="rgb24")


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return 10.0 * np.log10(255.0**2 / max(mse, 1e-10))


def _stacked(avatar: np.ndarray, closeup: np.ndarray) -> np.ndarray:
    """The avatar over the close-up in one frame, the narrower one centred on background."""
    from .render.palette import BACKGROUND_RGB

    width = max(avatar.shape[1], closeup.shape[1])
    rows = []
    for image in (avatar, closeup):
        pad = width - image.shape[1]
        rows.append(cv2.copyMakeBorder(image, 0, 0, pad // 2, pad - pad // 2, cv2.BORDER_CONSTANT, value=BACKGROUND_RGB))
    return np.vstack(rows)


def _time_closeup_clip(masker, clip: Path, frames: int, warmup: int, samples: dict[str, list[float]]) -> None:
    """Append one clip's per-frame figures (ms, bytes, dB) to `samples`."""
    avatar_stream, closeup_stream, stacked_stream = _Vp8Stream(), _Vp8Stream(), _Vp8Stream()
    with VideoReader(clip) as reader:
        for index, frame in zip(range(frames), reader):
            result = masker.process(cv2.resize(frame.rgb, SCALED_SIZE, interpolation=cv2.INTER_AREA))
            if result.closeup is None:
                continue
            avatar_ms, avatar_payloads = avatar_stream.send(result.image)
            closeup_ms, closeup_payloads = closeup_stream.send(result.closeup)
            start = time.perf_counter()
            stacked = _stacked(result.image, result.closeup)
            stack_ms = (time.perf_counter() - start) * 1e3
            stacked_ms, stacked_payloads = stacked_stream.send(stacked)
            closeup_seen = closeup_stream.receive(closeup_payloads)
            stacked_seen = stacked_stream.receive(stacked_payloads)
            if index < warmup:
                continue
            h, w = result.closeup.shape[:2]
            left = (stacked.shape[1] - w) // 2
            render_ms = result.timings_ms["closeup"]
            row = {
                "avatar_render_ms": result.timings_ms["render"],
                "closeup_render_ms": render_ms,
                "avatar_encode_ms": avatar_ms,
                "closeup_encode_ms": closeup_ms,
                "stacked_encode_ms": stacked_ms,
                "a_second_track_ms": render_ms + closeup_ms,
                "b_same_frame_ms": render_ms + stack_ms + stacked_ms - avatar_ms,
                "avatar_bytes": sum(map(len, avatar_payloads)),
                "closeup_bytes": sum(map(len, closeup_payloads)),
                "stacked_bytes": sum(map(len, stacked_payloads)),
                "a_closeup_psnr_db": _psnr(closeup_seen, result.closeup),
                "b_closeup_psnr_db": _psnr(stacked_seen[-h:, left : left + w], result.closeup),
            }
            for key, value in row.items():
                samples.setdefault(key, []).append(value)


def print_closeup_table(report: dict, out=sys.stderr) -> None:
    """The close-up report as a table: per size, median and p99 ms, median bytes and dB."""
    for label, figures in report["closeup"].items():
        print(f"close-up {label} (avatar {report['avatar_size']})", file=out)
        for key, value in figures.items():
            if isinstance(value, dict):
                cells = _cell(value["median_ms"], 9, 2), _cell(value["p99_ms"], 8, 2)
                print(f"  {key:22} {' '.join(cells)}", file=out)
            else:
                print(f"  {key:22} {value:9.1f}", file=out)
    print(f"{report['frames_per_clip']} frames a clip, first {report['warmup_frames']} untimed; {report['encoder']}", file=out)
