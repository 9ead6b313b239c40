"""The eyeball: a sphere fixed in the head, rotated by two angles, one per eye.

Each eye rotates about its own centre C_e (head frame, mm). With horizontal angle
theta (positive toward the image right, i.e. the subject's left) and vertical angle phi
(positive up), the gaze direction in the head frame (x right, y down, z into the scene;
a frontal face looks along -z) is

    d(theta, phi) = (sin(theta) cos(phi), -sin(phi), -cos(theta) cos(phi)).

The iris is the circle of radius r_i on the sphere of radius r; its centre, the point
the iris model tracks, sits at depth rho = sqrt(r^2 - r_i^2) along the gaze:

    P_e = C_e + rho * d(theta_e, phi_e).

Sizes are adult averages: r = 12 mm (axial length about 24 mm) and a horizontal visible
iris diameter of 11.7 mm, so r_i = 5.85 mm.
"""
from __future__ import annotations

import math

import numpy as np

EYEBALL_RADIUS_MM = 12.0
IRIS_RADIUS_MM = 5.85
PUPIL_RADIUS_MM = 2.0
#: Depth of the iris plane along the gaze axis from the eyeball centre.
IRIS_DEPTH_MM = math.sqrt(EYEBALL_RADIUS_MM**2 - IRIS_RADIUS_MM**2)


def gaze_direction(theta: float, phi: float) -> np.ndarray:
    """d(theta, phi): unit gaze vector in the head frame."""
    return np.array(
        [math.sin(theta) * math.cos(phi), -math.sin(phi), -math.cos(theta) * math.cos(phi)]
    )


def eyeball_rotation(theta: float, phi: float) -> np.ndarray:
    """Rotation taking eyeball-local axes to the head frame, local -z onto d(theta, phi).

    Columns: x = d_theta / cos(phi) = (cos t, 0, sin t); z = -d; y = z cross x, which
    equals -d_phi. At theta = phi = 0 this is the identity.
    """
    st, ct, sp, cp = math.sin(theta), math.cos(theta), math.sin(phi), math.cos(phi)
    return np.array(
        [
            [ct, st * sp, -st * cp],
            [0.0, cp, sp],
            [st, -ct * sp, ct * cp],
        ]
    )


def iris_centre(eye_centre: np.ndarray, theta: float, phi: float) -> np.ndarray:
    """P_e = C_e + rho * d(theta, phi), the tracked iris centre in the head frame."""
    return eye_centre + IRIS_DEPTH_MM * gaze_direction(theta, phi)
