"""Review layout: original | avatar in one frame.

This puts input pixels next to the avatar, so it is used only where a person
asked for it (`dmask mask --side-by-side`, the local preview window).
"""

from __future__ import annotations

import cv2
import numpy as np


def side_by_side(original: np.ndarray, avatar: np.ndarray) -> np.ndarray:
    """Return `original | avatar` at double width; the avatar is scaled to the original's size if it differs."""
    height, width = original.shape[:2]
    if avatar.shape[:2] != (height, width):
        avatar = cv2.resize(avatar, (width, height), interpolation=cv2.INTER_AREA)
    return np.hstack((original, avatar))
