"""The frame sent while no face is tracked: plain colour and a short message."""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from dmask_rt.render import palette

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def placeholder_frame(width: int, height: int, message: str = "No face tracked") -> np.ndarray:
    """(height, width, 3) uint8 RGB: the avatar background colour with `message` centred.

    Built only from constants, never from input pixels. Cached per (width, height,
    message) and returned read-only, so every call gives the identical frame.
    """
    return _placeholder(int(width), int(height), str(message))


@lru_cache(maxsize=16)
def _placeholder(width: int, height: int, message: str) -> np.ndarray:
    if width <= 0 or height <= 0:
        raise ValueError(f"frame size must be positive, got {width}x{height}")
    frame = np.empty((height, width, 3), np.uint8)
    frame[:] = palette.BACKGROUND_RGB
    if message:
        # Scale so the text spans about half the width, but stays under 7% of the height.
        (tw, th), _ = cv2.getTextSize(message, _FONT, 1.0, 2)
        scale = min(0.5 * width / tw, 0.07 * height / th)
        thickness = max(1, round(2 * scale))
        (tw, th), _ = cv2.getTextSize(message, _FONT, scale, thickness)
        origin = ((width - tw) // 2, (height + th) // 2)   # putText anchors at the baseline
        cv2.putText(frame, message, origin, _FONT, scale, palette.PLACEHOLDER_TEXT_RGB,
                    thickness, cv2.LINE_AA)
    frame.flags.writeable = False
    return frame
