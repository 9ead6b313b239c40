"""The iris model (iris_landmark.tflite): 71 eye-contour and 5 iris points for one eye.

As MediaPipe's IrisLandmarkLeftAndRight graph: the eye ROI is the square around the two
eye corners, levelled by them and scaled 2.3; it is cropped and resized to 64x64
(values in [0, 1]). The model knows only the eye on the image's left (the subject's
right eye), so the other eye's crop is mirrored and its x outputs mirrored back.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .roi import Roi, crop_resize_to_image, project, roi_from_points, tensor_to_image, warp
from .tflite import TfliteModel

ROI_SCALE = 2.3
NUM_CONTOUR = 71
NUM_IRIS = 5


def eye_roi(corners: np.ndarray) -> Roi:
    """Eye ROI from its two corners (2,2), listed image-left one first (IrisLandmarkLandmarksToRoi)."""
    return roi_from_points(corners, 0, 1, ROI_SCALE)


class IrisModel:
    """Runs the iris model on one eye of an RGB frame."""

    def __init__(self, model_path: Path, num_threads: int = 1) -> None:
        self._model = TfliteModel(model_path, num_threads)
        self._size = self._model.input_size
        self._pixels = np.empty((self._size, self._size, 3), np.uint8)

    def run(self, rgb: np.ndarray, roi: Roi, mirror: bool) -> tuple[np.ndarray, np.ndarray]:
        """Eye contour (71,2) and iris (5,2), image pixels.

        Iris: centre, then the boundary points on the image right, top, image left, bottom.
        """
        sample = crop_resize_to_image(roi, self._size, mirror)
        warp(rgb, sample, self._size, self._pixels, cv2.BORDER_REPLICATE)
        contour, iris = self._model.run(self._pixels, 1.0 / 255.0, 0.0)
        xy = np.concatenate([contour.reshape(NUM_CONTOUR, 3), iris.reshape(NUM_IRIS, 3)])[:, :2]
        if mirror:
            xy[:, 0] = self._size - xy[:, 0]
            # Iris boundary comes as right, top, left, bottom of the model's view; keep
            # that order in image terms (as the refined face mesh reports both irises).
            xy[[NUM_CONTOUR + 1, NUM_CONTOUR + 3]] = xy[[NUM_CONTOUR + 3, NUM_CONTOUR + 1]]
        # The graph projects outputs through the unrounded ROI, unlike its crop.
        out = project(xy, tensor_to_image(roi, self._size))
        return out[:NUM_CONTOUR], out[NUM_CONTOUR:]
