"""Named vertex sets of MediaPipe's 468-point face mesh, which is the avatar's mesh too.

The tracker returns landmarks in this order and the generic face has one vertex per
landmark, so the fit compares landmark i with vertex i. The sets come from MediaPipe's
`face_mesh_connections.py` (Apache-2.0), written here in ring order.

"Right" and "left" are the subject's own: the right eye is on the image's left.
"""
from __future__ import annotations

import numpy as np

N_MESH = 468
#: Tracker points 468..472 and 473..477 are the right and left iris, centre first.
IRIS_CENTRE = (468, 473)

# Lid margins from the lateral corner to the medial corner; upper and lower share the
# corners, and the i-th upper vertex faces the i-th lower vertex across the eye.
EYE_CORNERS = np.array([[33, 133], [263, 362]], dtype=np.int32)  # (eye, lateral/medial)
UPPER_LID = np.array(
    [[246, 161, 160, 159, 158, 157, 173], [466, 388, 387, 386, 385, 384, 398]], dtype=np.int32
)
LOWER_LID = np.array(
    [[7, 163, 144, 145, 153, 154, 155], [249, 390, 373, 374, 380, 381, 382]], dtype=np.int32
)


def eye_rings() -> np.ndarray:
    """(2, 16) closed ring around each eye opening: lateral corner, lower lid, medial corner, upper lid back."""
    rings = [
        np.concatenate([[EYE_CORNERS[e, 0]], LOWER_LID[e], [EYE_CORNERS[e, 1]], UPPER_LID[e][::-1]])
        for e in range(2)
    ]
    return np.array(rings, dtype=np.int32)


#: Inner lip contour around the mouth opening, in ring order.
MOUTH_RING = np.array(
    [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191],
    dtype=np.int32,
)

#: Each brow's lower and upper edge, lateral to medial ([0] = the subject's right brow).
BROWS = np.array(
    [
        [[46, 53, 52, 65, 55], [70, 63, 105, 66, 107]],
        [[276, 283, 282, 295, 285], [300, 293, 334, 296, 336]],
    ],
    dtype=np.int32,
)
