"""BlazeFace short-range face detection (face_detection_short_range.tflite).

Reproduces MediaPipe's FaceDetectionShortRange graph: the whole frame letterboxed into
128x128 with zero borders and values in [-1, 1], 896 SSD anchors, box and six keypoint
decoding, sigmoid scores, weighted non-maximum suppression, projection back to pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .roi import Roi, tensor_to_image, warp
from .tflite import TfliteModel

MIN_SCORE = 0.5  # MediaPipe's min_detection_confidence default
NMS_IOU = 0.3  # min_suppression_threshold of the graph
_SCORE_CLIP = 100.0
_NUM_KEYPOINTS = 6


def ssd_anchors(input_size: int = 128, strides: tuple[int, ...] = (8, 16, 16, 16)) -> np.ndarray:
    """Anchor centres (N,2) in [0,1] as MediaPipe's SsdAnchorsCalculator makes them.

    Options of the short-range graph: one aspect ratio plus the interpolated scale, so
    two anchors per cell per layer; consecutive layers with equal stride share one
    feature map. ``fixed_anchor_size`` makes every anchor 1x1, so only centres matter.
    """
    centres = []
    layer = 0
    while layer < len(strides):
        same = layer
        while same < len(strides) and strides[same] == strides[layer]:
            same += 1
        per_cell = 2 * (same - layer)
        cells = int(np.ceil(input_size / strides[layer]))
        grid = (np.arange(cells, dtype=np.float32) + 0.5) / cells
        yy, xx = np.meshgrid(grid, grid, indexing="ij")
        cell_centres = np.stack([xx.ravel(), yy.ravel()], axis=1)
        centres.append(np.repeat(cell_centres, per_cell, axis=0))
        layer = same
    return np.concatenate(centres).astype(np.float32)


@dataclass(frozen=True)
class Detection:
    """One face: score, box (x0, y0, x1, y1) and six keypoints (6,2), image pixels.

    Keypoints: eye on the image left (subject's right), other eye, nose tip, mouth
    centre, ear tragion on the image left, other ear tragion.
    """

    score: float
    box: np.ndarray
    keypoints: np.ndarray

    @property
    def area(self) -> float:
        """Box area in square pixels."""
        return float((self.box[2] - self.box[0]) * (self.box[3] - self.box[1]))


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one box (4,) with many (N,4), as x0,y0,x1,y1."""
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = ix * iy
    union = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(scores: np.ndarray, coords: np.ndarray, iou: float = NMS_IOU) -> list[tuple[float, np.ndarray]]:
    """MediaPipe's WEIGHTED non-max suppression.

    ``coords`` (N,4+2K) are boxes then keypoints. Each cluster (IoU > ``iou`` with the
    best remaining box, the best included) becomes one detection whose coordinates are
    the score-weighted mean of the cluster and whose score is the best one's.
    """
    order = np.argsort(-scores, kind="stable")
    out = []
    while order.size:
        sim = _iou(coords[order[0], :4], coords[order, :4])
        cluster, order = order[sim > iou], order[sim <= iou]
        if cluster.size == 0:  # degenerate best box: keep it alone
            cluster, order = order[:1], order[1:]
        w = scores[cluster]
        out.append((float(scores[cluster[0]]), (coords[cluster] * w[:, None]).sum(0) / w.sum()))
    return out


class FaceDetector:
    """Finds faces in a whole RGB frame."""

    def __init__(self, model_path: Path, num_threads: int = 1, min_score: float = MIN_SCORE) -> None:
        self._model = TfliteModel(model_path, num_threads)
        self._size = self._model.input_size
        self._anchors = ssd_anchors(self._size)
        self._min_logit = float(np.log(min_score / (1.0 - min_score)))
        self._pixels = np.empty((self._size, self._size, 3), np.uint8)

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """All faces in ``rgb`` (H,W,3 uint8), best score first."""
        h, w = rgb.shape[:2]
        side = float(max(w, h))  # letterbox: the square around the frame, zero padded
        to_image = tensor_to_image(Roi(w * 0.5, h * 0.5, side, side), self._size)
        warp(rgb, to_image, self._size, self._pixels, cv2.BORDER_CONSTANT)
        raw_boxes, raw_scores = self._model.run(self._pixels, 2.0 / 255.0, -1.0)
        logits = np.clip(raw_scores[0, :, 0], -_SCORE_CLIP, _SCORE_CLIP)
        keep = np.flatnonzero(logits >= self._min_logit)  # sigmoid(x) >= p  <=>  x >= logit(p)
        if keep.size == 0:
            return []
        scores = 1.0 / (1.0 + np.exp(-logits[keep]))
        raw = raw_boxes[0, keep].reshape(-1, 2 + _NUM_KEYPOINTS, 2) / self._size
        centres = raw + self._anchors[keep, None, :]  # keypoints and box centre: offset from anchor
        half = raw[:, 1] * 0.5  # box size (w, h), anchors are 1x1
        box_xy = centres[:, 0]
        coords = np.concatenate([box_xy - half, box_xy + half, centres[:, 2:].reshape(-1, 2 * _NUM_KEYPOINTS)], axis=1)
        found = []
        for score, c in weighted_nms(scores, coords):
            pts = c.reshape(-1, 2) * self._size
            pts = pts @ to_image[:, :2].T + to_image[:, 2]
            found.append(Detection(score, pts[:2].ravel().astype(np.float32), pts[2:].astype(np.float32)))
        return found
