"""The usual alternatives to the mask, made from the original frame and its landmarks.

Boxes come from the tracker's landmarks on the original (the same face the mask sees):

    face box  the landmarks' bounding box grown by 10% of its size on each side
    eye box   the bounding box of both eyes' full contours (lids, the halos around
              them and the brows) grown by 10% on each side

    raw       the original frame (the upper bound of what can be recognised)
    recoded   the original through JPEG at quality 95: no pixel moves, each is off by a
              grey level or two, as after any camera or codec. Tracking it measures the
              tracker's own repeatability: the floor under every other output's error
    eye_crop  only the eye box kept, everything else black (the paper's comparison)
    blur      Gaussian blur of the face box, sigma = face box width / 12 (computed at
              1/f of the size, f = floor(sigma / BLUR_WORK_SIGMA), and scaled back:
              on dev frames at sigma 25-80 px it differs from the full-size blur by
              0.2-0.9 grey levels on average (99% of pixels within 9, the rest at the
              box's edges, up to 22), and
              takes 1-2 ms instead of 30-630 ms for a whole 960x540 frame)
    pixelate  the face box averaged into blocks, 10 across its width

A frame without landmarks has no box: the crop is black and blur/pixelation cover the
whole frame, so a baseline never shows a face the tracker missed.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

from ..track.landmarks import FaceLandmarks

GROW = 0.1
BLUR_SIGMA_PER_WIDTH = 1 / 12
BLUR_WORK_SIGMA = 4.0
PIXEL_BLOCKS = 10
RECODE_QUALITY = 95


def _box(points: np.ndarray, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) integer box around `points`, grown by GROW and clipped to the image."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    margin = GROW * (hi - lo)
    x0, y0 = np.floor(lo - margin).astype(int)
    x1, y1 = np.ceil(hi + margin).astype(int)
    h, w = shape[:2]
    return max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)


def raw(rgb: np.ndarray, landmarks: FaceLandmarks | None) -> np.ndarray:
    return rgb


def recoded(rgb: np.ndarray, landmarks: FaceLandmarks | None) -> np.ndarray:
    _, jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, RECODE_QUALITY])
    return cv2.cvtColor(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def eye_crop(rgb: np.ndarray, landmarks: FaceLandmarks | None) -> np.ndarray:
    out = np.zeros_like(rgb)
    if landmarks is not None:
        x0, y0, x1, y1 = _box(landmarks.eye_contours.reshape(-1, 2), rgb.shape)
        out[y0:y1, x0:x1] = rgb[y0:y1, x0:x1]
    return out


def blur(rgb: np.ndarray, landmarks: FaceLandmarks | None) -> np.ndarray:
    x0, y0, x1, y1 = _box(landmarks.points, rgb.shape) if landmarks is not None else (0, 0, rgb.shape[1], rgb.shape[0])
    out = rgb.copy()
    if x1 > x0 and y1 > y0:
        sigma = max((x1 - x0) * BLUR_SIGMA_PER_WIDTH, 1.0)
        out[y0:y1, x0:x1] = _gaussian(rgb[y0:y1, x0:x1], sigma)
    return out


def _gaussian(rgb: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of `rgb` by `sigma` px, worked at a reduced size when sigma is large (module docstring)."""
    f = max(1, int(sigma // BLUR_WORK_SIGMA))
    h, w = rgb.shape[:2]
    if f == 1 or min(h, w) < 2 * f:
        return cv2.GaussianBlur(rgb, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    small = cv2.resize(rgb, (max(1, round(w / f)), max(1, round(h / f))), interpolation=cv2.INTER_AREA)
    # Area averaging over f pixels is itself a blur of about f / sqrt(12) px: take it off.
    rest = math.sqrt(max(sigma**2 - f**2 / 12, 0.25)) / f
    small = cv2.GaussianBlur(small, (0, 0), rest, borderType=cv2.BORDER_REPLICATE)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def pixelate(rgb: np.ndarray, landmarks: FaceLandmarks | None) -> np.ndarray:
    x0, y0, x1, y1 = _box(landmarks.points, rgb.shape) if landmarks is not None else (0, 0, rgb.shape[1], rgb.shape[0])
    out = rgb.copy()
    if x1 > x0 and y1 > y0:
        w, h = x1 - x0, y1 - y0
        cols = PIXEL_BLOCKS
        rows = max(1, round(PIXEL_BLOCKS * h / w))
        small = cv2.resize(rgb[y0:y1, x0:x1], (cols, rows), interpolation=cv2.INTER_AREA)
        out[y0:y1, x0:x1] = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    return out


BASELINES: dict[str, Callable[[np.ndarray, FaceLandmarks | None], np.ndarray]] = {
    "raw": raw, "recoded": recoded, "eye_crop": eye_crop, "blur": blur, "pixelate": pixelate,
}
