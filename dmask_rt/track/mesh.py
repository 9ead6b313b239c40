"""The 468-point face mesh model (face_landmark.tflite) on a rotated face ROI.

As MediaPipe's FaceLandmarkCpu graph: a 192x192 crop of the ROI (replicated borders,
values in [0, 1]), 468 x,y,z in crop pixels, a face-presence logit through a sigmoid.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .detector import Detection
from .roi import Roi, project, roi_from_points, rotation_between, square_roi, tensor_to_image, warp
from .tflite import TfliteModel

NUM_POINTS = 468
ROI_SCALE = 1.5  # face ROI = landmark (or detection) box times 1.5, square
# Landmarks whose line sets the tracking ROI's rotation (face_landmark_landmarks_to_roi).
ROTATION_START, ROTATION_END = 33, 263  # outer corners of the two eyes


@dataclass(frozen=True)
class MeshResult:
    """Mesh points (468,3) in image pixels, z as MediaPipe's (scaled like x), and presence."""

    points: np.ndarray
    score: float


class FaceMeshModel:
    """Runs the face mesh model on an ROI of an RGB frame."""

    def __init__(self, model_path: Path, num_threads: int = 1) -> None:
        self._model = TfliteModel(model_path, num_threads)
        self._size = self._model.input_size
        self._pixels = np.empty((self._size, self._size, 3), np.uint8)

    def run(self, rgb: np.ndarray, roi: Roi) -> MeshResult:
        """Landmarks and face-presence probability for the face in ``roi`` of ``rgb``."""
        to_image = tensor_to_image(roi, self._size)
        warp(rgb, to_image, self._size, self._pixels, cv2.BORDER_REPLICATE)
        raw, flag = self._model.run(self._pixels, 1.0 / 255.0, 0.0)
        raw = raw.reshape(NUM_POINTS, 3)
        points = np.empty((NUM_POINTS, 3), np.float32)
        points[:, :2] = project(raw[:, :2], to_image)
        points[:, 2] = raw[:, 2] * np.float32(roi.width / self._size)
        score = 1.0 / (1.0 + np.exp(-float(np.clip(flag.ravel()[0], -100.0, 100.0))))
        return MeshResult(points, float(score))


def roi_from_detection(det: Detection) -> Roi:
    """Face ROI from a detection: its box, levelled by the eye keypoints, times 1.5.

    MediaPipe's FaceDetectionFrontDetectionToRoi.
    """
    x0, y0, x1, y1 = (float(v) for v in det.box)
    return square_roi(x0, y0, x1, y1, rotation_between(det.keypoints[0], det.keypoints[1]), ROI_SCALE)


def roi_from_mesh(points: np.ndarray) -> Roi:
    """Next frame's face ROI from this frame's mesh (MediaPipe FaceLandmarkLandmarksToRoi)."""
    return roi_from_points(points, ROTATION_START, ROTATION_END, ROI_SCALE)
