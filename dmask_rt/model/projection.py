"""Where the tracker's points fall for given avatar parameters: the fit's forward model.

Used to make known-answer landmark sets (tests, synthetic sequences) and to draw the
fitted model over a frame when reviewing a fit.
"""
from __future__ import annotations

import numpy as np

from .camera import Camera
from .eyeball import iris_centre
from .generic_face import GenericFace
from .mesh_indices import IRIS_CENTRE, N_MESH
from .params import AvatarParams

N_TRACKED = 478


def project_landmarks(face: GenericFace, params: AvatarParams, camera: Camera) -> np.ndarray:
    """(478, 2) pixels: mesh vertices pi(R V_i + t), iris centres pi(R P_e + t).

    The four iris-boundary points of each eye (which the fit does not use) are left at
    the iris centre.
    """
    points = np.zeros((N_TRACKED, 2))
    cam = face.vertices(params.expression, params.lids, params.fissure) @ params.rotation.T + params.translation
    points[:N_MESH] = camera.project(cam)
    for e, start in enumerate(IRIS_CENTRE):
        c = params.rotation @ iris_centre(face.eye_centres[e], *params.eyes[e]) + params.translation
        points[start : start + 5] = camera.project(c[None])[0]
    return points
