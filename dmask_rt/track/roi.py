"""Rotated square regions of interest and the crops MediaPipe takes from them.

All coordinates are image pixels (x right, y down), OpenCV's convention of pixel
centres at integers, which is what MediaPipe's normalised coordinates times the
image size give. Angles are radians; a positive angle turns the region clockwise
on screen, as MediaPipe's ``NormalizedRect.rotation``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Roi:
    """A rotated rectangle: centre, size and rotation, in image pixels."""

    cx: float
    cy: float
    width: float
    height: float
    angle: float = 0.0


def normalize_radians(angle: float) -> float:
    """``angle`` wrapped into [-pi, pi)."""
    return angle - 2.0 * math.pi * math.floor((angle + math.pi) / (2.0 * math.pi))


def rotation_between(start: np.ndarray, end: np.ndarray) -> float:
    """Rotation that makes the vector start->end horizontal (MediaPipe DetectionsToRects)."""
    return normalize_radians(-math.atan2(-(float(end[1]) - float(start[1])), float(end[0]) - float(start[0])))


def square_roi(x0: float, y0: float, x1: float, y1: float, angle: float, scale: float) -> Roi:
    """Square ROI around the axis-aligned box, its long side times ``scale``.

    This is MediaPipe's RectTransformationCalculator with ``square_long: true`` and no shift.
    """
    side = max(x1 - x0, y1 - y0) * scale
    return Roi((x0 + x1) * 0.5, (y0 + y1) * 0.5, side, side, angle)


def roi_from_points(points: np.ndarray, start: int, end: int, scale: float) -> Roi:
    """Square ROI enclosing ``points`` (N,2+), rotated so points[start]->points[end] is level.

    MediaPipe's LandmarksToDetection + DetectionsToRects + RectTransformation chain.
    """
    xy = points[:, :2]
    x0, y0 = xy.min(axis=0)
    x1, y1 = xy.max(axis=0)
    return square_roi(float(x0), float(y0), float(x1), float(y1), rotation_between(xy[start], xy[end]), scale)


def _frame(roi: Roi) -> tuple[float, float, float, float]:
    c, s = math.cos(roi.angle), math.sin(roi.angle)
    return c, s, roi.cx, roi.cy


def tensor_to_image(roi: Roi, size: int) -> np.ndarray:
    """2x3 affine map from model-input pixels to image pixels (MediaPipe ImageToTensor).

    The ROI's corners map to 0 and ``size`` in the model input, and the same map
    takes the model's landmark coordinates (in input pixels) back to the image.
    """
    c, s, cx, cy = _frame(roi)
    ax, ay = roi.width / size, roi.height / size
    # p = centre + R @ ((u / size - 0.5) * (w, h))
    return np.array(
        [
            [c * ax, -s * ay, cx - c * roi.width * 0.5 + s * roi.height * 0.5],
            [s * ax, c * ay, cy - s * roi.width * 0.5 - c * roi.height * 0.5],
        ],
        dtype=np.float64,
    )


def crop_resize_to_image(roi: Roi, size: int, mirror: bool) -> np.ndarray:
    """2x3 affine map from model-input pixels to image pixels for MediaPipe's two-step crop.

    The iris graph crops the ROI with ImageCroppingCalculator (centre and size rounded
    to whole pixels, corners mapped to 0 and n-1), resizes that crop to ``size`` with
    cv::resize (pixel-centre aligned), and optionally flips it horizontally. Composing
    the three maps lets one warp sample the same positions.
    """
    n = max(int(round(roi.width)), 2)
    m = max(int(round(roi.height)), 2)
    c, s = math.cos(roi.angle), math.sin(roi.angle)
    cx, cy = float(round(roi.cx)), float(round(roi.cy))
    # model pixel j -> crop pixel a = (j + 0.5) * n / size - 0.5 (flip: j -> size - 1 - j)
    # crop pixel a -> rect offset (a / (n - 1) - 0.5) * n
    kx, ky = n / size * n / (n - 1), m / size * m / (m - 1)
    bx = (0.5 * n / size - 0.5) * n / (n - 1) - 0.5 * n
    by = (0.5 * m / size - 0.5) * m / (m - 1) - 0.5 * m
    if mirror:
        bx, kx = bx + kx * (size - 1), -kx
    # offset (du, dv) = (kx * j + bx, ky * k + by); p = centre + R @ (du, dv)
    return np.array(
        [
            [c * kx, -s * ky, cx + c * bx - s * by],
            [s * kx, c * ky, cy + s * bx + c * by],
        ],
        dtype=np.float64,
    )


def warp(image: np.ndarray, to_image: np.ndarray, size: int, out: np.ndarray, border: int) -> np.ndarray:
    """Bilinear ``size``x``size`` crop of ``image`` sampled through ``to_image`` into ``out``."""
    return cv2.warpAffine(
        image, to_image, (size, size), dst=out,
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=border, borderValue=0,
    )


def project(points: np.ndarray, to_image: np.ndarray) -> np.ndarray:
    """Apply the 2x3 affine ``to_image`` to (N,2) points; float32 result."""
    return (points @ to_image[:, :2].T.astype(np.float32)) + to_image[:, 2].astype(np.float32)
