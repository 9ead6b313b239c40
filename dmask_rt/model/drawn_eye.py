"""What the avatar draws of each eye: its outline projected into the image.

The renderer shows the eyeball only inside each lid-margin ring and draws the ring's
vertices where the camera projects them (`render/renderer.py`), so the drawn eye is

    corners, lid margins   pi(R V_i + t) for the ring's vertices V_i (generic face,
                           expression and lids applied)
    iris centre            pi(R P_e + t),  P_e = C_e + rho d(theta_e, phi_e) (eyeball.py)
    iris radius            f r_i / z_e: the limbus circle of radius r_i at depth z_e
                           seen face-on (the long axis of its projected ellipse)

as an `EyeOutline` in pixels, which `read_eye` reads in the same clinical units as the
patient's eye. The fit's eye transfer (`fit/eye_transfer.py`) solves for parameters
whose drawn outline reads as the patient's; `dmask eval` compares the two.
"""
from __future__ import annotations

import numpy as np

from ..track.eye_outline import EyeOutline
from .camera import Camera
from .eyeball import IRIS_RADIUS_MM, iris_centre
from .generic_face import GenericFace
from .mesh_indices import EYE_CORNERS, LOWER_LID, UPPER_LID
from .params import AvatarParams

#: Per eye the drawn vertices in one array: lateral corner, medial corner, 7 upper, 7 lower.
EYE_VERTICES = np.concatenate([EYE_CORNERS, UPPER_LID, LOWER_LID], axis=1)
_N_UPPER = UPPER_LID.shape[1]


class EyeGeometry:
    """The drawn eye vertices of one face as linear functions of the parameters.

    Holds the template, expression and lid shapes restricted to EYE_VERTICES, so a
    drawn outline costs a few small products instead of the whole mesh.
    """

    def __init__(self, face: GenericFace) -> None:
        idx = EYE_VERTICES.ravel()
        n = len(idx)
        self.mean = face.mean[idx]                       # (2*16, 3)
        self.expression = face.expression[:, idx]        # (K, 2*16, 3)
        self.lids = face.lids[:, idx]                    # (8, 2*16, 3)
        self.fissures = face.fissures[:, idx]            # (2, 2*16, 3)
        self.eye_centres = face.eye_centres
        self._per_eye = n // 2

    def head_vertices(self, expression: np.ndarray, lids: np.ndarray, fissure: np.ndarray) -> np.ndarray:
        """(2, 16, 3) head-frame eye vertices (corners, upper, lower) for these weights."""
        v = (self.mean + np.tensordot(expression, self.expression, axes=1) + np.tensordot(lids, self.lids, axes=1)
             + np.tensordot(fissure, self.fissures, axes=1))
        return v.reshape(2, self._per_eye, 3)

    def outlines(self, params: AvatarParams, camera: Camera) -> tuple[EyeOutline, EyeOutline]:
        """(right, left) drawn outlines for `params` seen by `camera`."""
        verts = self.head_vertices(params.expression, params.lids, params.fissure)
        out = []
        for e in range(2):
            px = camera.project(verts[e] @ params.rotation.T + params.translation)
            iris = params.rotation @ iris_centre(self.eye_centres[e], *params.eyes[e]) + params.translation
            centre = camera.project(iris[None])[0]
            out.append(
                EyeOutline(px[:2], px[2 : 2 + _N_UPPER], px[2 + _N_UPPER :], centre, camera.fx * IRIS_RADIUS_MM / iris[2])
            )
        return out[0], out[1]

