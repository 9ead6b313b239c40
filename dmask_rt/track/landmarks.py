"""The tracker's per-frame result and the 478-point index layout it follows.

The layout is ``mp.solutions.face_mesh`` with ``refine_landmarks=True``: the 468 mesh
points with each eye's 71 contour points taken from the iris model, then five iris
points per eye. "Right"/"left" here are the subject's; MediaPipe's own graphs call
the subject's right eye "left" (it is on the image's left).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .eye_outline import EyeOutline

NUM_POINTS = 478

# Mesh indices replaced by the iris model's 71 contour points, in the model's order
# (MediaPipe's UpdateFaceLandmarksCalculator / LandmarksRefinementCalculator lists).
# Per eye: lower lid corner to corner (9), upper lid without corners (7), then four
# halos around the eye and the brow.
EYE_CONTOUR_MESH_INDICES = np.array(
    [
        [  # subject's right eye (image left), corners 33 (outer) and 133 (inner)
            33, 7, 163, 144, 145, 153, 154, 155, 133,
            246, 161, 160, 159, 158, 157, 173,
            130, 25, 110, 24, 23, 22, 26, 112, 243,
            247, 30, 29, 27, 28, 56, 190,
            226, 31, 228, 229, 230, 231, 232, 233, 244,
            113, 225, 224, 223, 222, 221, 189,
            35, 124, 46, 53, 52, 65,
            143, 111, 117, 118, 119, 120, 121, 128, 245,
            156, 70, 63, 105, 66, 107, 55, 193,
        ],
        [  # subject's left eye (image right), corners 263 (outer) and 362 (inner)
            263, 249, 390, 373, 374, 380, 381, 382, 362,
            466, 388, 387, 386, 385, 384, 398,
            359, 255, 339, 254, 253, 252, 256, 341, 463,
            467, 260, 259, 257, 258, 286, 414,
            446, 261, 448, 449, 450, 451, 452, 453, 464,
            342, 445, 444, 443, 442, 441, 413,
            265, 353, 276, 283, 282, 295,
            372, 340, 346, 347, 348, 349, 350, 357, 465,
            383, 300, 293, 334, 296, 336, 285, 417,
        ],
    ],
    dtype=np.intp,
)
# Positions within a 71-point contour (same for both eyes).
CONTOUR_CORNERS = (0, 8)  # the two eye corners
CONTOUR_LOWER_MID = 4  # mesh 145 / 374
CONTOUR_UPPER_MID = 12  # mesh 159 / 386
CONTOUR_EYELID = slice(0, 16)  # lower lid 0..8 then upper lid 9..15: the eye opening

# First index of each eye's five iris points: centre, then the iris boundary at the
# image right, top, image left and bottom (MediaPipe's order for both eyes).
IRIS_START = (468, 473)


@dataclass(frozen=True)
class FaceLandmarks:
    """One face in one frame.

    points: (478, 2) float32 image pixels (x right, y down) in the layout above;
        468..472 = subject's right iris, 473..477 = left iris, each centre first, then
        the boundary at image right, top, image left, bottom.
    depth: (478,) float32 relative depth in pixels, as MediaPipe's z (smaller = nearer).
    confidence: face presence probability from the mesh model, 0..1.
    detected: True if the detector ran this frame (first frame or tracking lost).
    eye_contours: (2, 71, 2) float32 full iris-model contours in image pixels,
        [0] = subject's right eye, [1] = left eye.
    eyes: (right, left) outlines of the eye openings and limbus, refined against the
        pixels (`eye_refine.py`); None where no tracker made them.
    """

    points: np.ndarray
    depth: np.ndarray
    confidence: float
    detected: bool
    eye_contours: np.ndarray
    eyes: tuple[EyeOutline, EyeOutline] | None = None
