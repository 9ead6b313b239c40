"""Per-frame face tracking: detector when needed, mesh on a warm-started ROI, irises.

The pipeline is MediaPipe's face mesh with iris refinement, run without mediapipe:
the previous frame's mesh gives this frame's ROI; the detector runs only on the first
frame, after a loss, or when the mesh's presence score falls below ``min_confidence``
(then in the same frame). Fails closed: no confident face, no landmarks.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..assets import model_path
from .detector import FaceDetector
from .eye_outline import tracked_outlines
from .eye_refine import EyeRefiner, refined_outlines
from .iris import NUM_CONTOUR, NUM_IRIS, IrisModel, eye_roi
from .landmarks import CONTOUR_EYELID, EYE_CONTOUR_MESH_INDICES, IRIS_START, NUM_POINTS, FaceLandmarks
from .mesh import FaceMeshModel, MeshResult, roi_from_detection, roi_from_mesh
from .roi import Roi

# Mesh eye corners that set each eye's ROI, image-left corner first, and whether the
# iris model sees that eye mirrored (it only knows the eye on the image's left).
_EYES = (((33, 133), False), ((362, 263), True))
# The iris z the refined face mesh reports: mean z of the eye opening's 16 mesh points.
_EYELID_POINTS = EYE_CONTOUR_MESH_INDICES[:, CONTOUR_EYELID]


@functools.cache
def _second_eye() -> ThreadPoolExecutor:
    """The process's worker for each frame's second iris model run, while the first runs
    in the caller's thread: the interpreter releases the GIL while it runs, so both eyes
    take about the time of one (2.5 -> 1.3 ms at 640x480 with a core free). One worker
    per core is shared by every tracker, so threads do not grow with rooms."""
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="dmask-iris")


def _check_frame(rgb: np.ndarray) -> None:
    """Raise ValueError unless ``rgb`` is an (H, W, 3) uint8 array of at least 2x2."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        desc = f"{rgb.shape} {rgb.dtype}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise ValueError(f"expected an RGB frame of shape (H, W, 3) and dtype uint8, got {desc}")
    if rgb.shape[0] < 2 or rgb.shape[1] < 2:
        raise ValueError(f"frame too small: {rgb.shape}")


class FaceTracker:
    """Tracks one face (the largest when detecting) through a stream of RGB frames.

    ``min_confidence`` gates the mesh's face-presence probability both when tracking
    and right after a detection; ``num_threads`` is per model (1 measured fastest
    under load on 2 cores). ``refine_eyes`` refines each eye's outline against the
    pixels (`eye_refine.py`); without it the outlines are the landmark models' own.
    """

    def __init__(
        self, models_dir: Path | None = None, min_confidence: float = 0.5, num_threads: int = 1, refine_eyes: bool = True
    ) -> None:
        self.min_confidence = min_confidence
        self._refiner = EyeRefiner() if refine_eyes else None
        self._detector = FaceDetector(model_path("face_detection_short_range", models_dir), num_threads)
        self._mesh = FaceMeshModel(model_path("face_landmark", models_dir), num_threads)
        # One iris model per eye: the two run at the same time (`_second_eye`).
        self._iris = tuple(IrisModel(model_path("iris_landmark", models_dir), num_threads) for _ in range(2))
        self._roi: Roi | None = None
        self._shape: tuple[int, ...] | None = None

    def reset(self) -> None:
        """Forget the previous face: the next frame runs the detector."""
        self._roi = None
        self._shape = None
        if self._refiner is not None:
            self._refiner.reset()

    def track(self, rgb: np.ndarray) -> FaceLandmarks | None:
        """Landmarks of the face in ``rgb`` (H,W,3 uint8), or None if there is no face."""
        _check_frame(rgb)
        if rgb.shape != self._shape:  # new stream or resolution change: old ROI is meaningless
            self.reset()
            self._shape = rgb.shape
        mesh = None
        if self._roi is not None:
            mesh = self._mesh.run(rgb, self._roi)
            if mesh.score < self.min_confidence:
                mesh = None
        detected = mesh is None
        if mesh is None:
            mesh = self._detect(rgb)
        if mesh is None:
            self._roi = None
            return None
        self._roi = roi_from_mesh(mesh.points)
        return self._refine(rgb, mesh, detected)

    def _detect(self, rgb: np.ndarray) -> MeshResult | None:
        """Mesh on the largest detected face, if it is confident enough."""
        faces = self._detector.detect(rgb)
        if not faces:
            return None
        mesh = self._mesh.run(rgb, roi_from_detection(max(faces, key=lambda d: d.area)))
        return mesh if mesh.score >= self.min_confidence else None

    def _refine(self, rgb: np.ndarray, mesh: MeshResult, detected: bool) -> FaceLandmarks:
        """Replace the eye contours with the iris model's and add the irises."""
        points = np.empty((NUM_POINTS, 2), np.float32)
        depth = np.empty(NUM_POINTS, np.float32)
        points[: len(mesh.points)] = mesh.points[:, :2]
        depth[: len(mesh.points)] = mesh.points[:, 2]
        contours = np.empty((2, NUM_CONTOUR, 2), np.float32)
        rois = [eye_roi(mesh.points[list(corners), :2]) for corners, _ in _EYES]
        left = _second_eye().submit(self._iris[1].run, rgb, rois[1], _EYES[1][1])
        results = (self._iris[0].run(rgb, rois[0], _EYES[0][1]), left.result())
        for eye, (contour, iris) in enumerate(results):
            contours[eye] = contour
            # x, y from the iris model; z stays the mesh's, as the refined face mesh does.
            points[EYE_CONTOUR_MESH_INDICES[eye]] = contour
            start = IRIS_START[eye]
            points[start : start + NUM_IRIS] = iris
            depth[start : start + NUM_IRIS] = depth[_EYELID_POINTS[eye]].mean()
        landmarks = FaceLandmarks(points, depth, mesh.score, detected, contours)
        if self._refiner is None:
            return replace(landmarks, eyes=tracked_outlines(landmarks))
        return replace(landmarks, eyes=refined_outlines(self._refiner, rgb, landmarks))
