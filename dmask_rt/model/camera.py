"""Pinhole camera shared by the fit and the renderer.

Coordinates follow OpenCV: x to the image right, y down, z away from the camera into
the scene, in millimetres. A point X = (x, y, z) projects to pixel

    u = fx * x / z + cx,    v = fy * y / z + cy.

Webcams do not report their focal length, so it is assumed: f = max(width, height),
about a 53 degree field of view across the long side, typical of laptop cameras. The
assumption only scales the fitted head distance; rotations and eyelid shapes barely
depend on it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Camera:
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def for_image(cls, width: int, height: int) -> "Camera":
        """The assumed webcam for an image of this size (principal point at the centre)."""
        f = float(max(width, height))
        return cls(width, height, f, f, width / 2.0, height / 2.0)

    def project(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) camera-frame points in mm -> (N, 2) pixels."""
        z = points[:, 2]
        return np.stack(
            [self.fx * points[:, 0] / z + self.cx, self.fy * points[:, 1] / z + self.cy], axis=1
        )

    def gl_projection(self, near: float = 10.0, far: float = 10000.0) -> np.ndarray:
        """4x4 OpenGL clip matrix (column-vector convention) for camera-frame points.

        It maps OpenCV camera coordinates straight to clip space, folding in the y and z
        flips, so pixel (u, v) of the projection lands on the same pixel of a framebuffer
        read back top row first.
        """
        w, h = self.width, self.height
        return np.array(
            [
                [2 * self.fx / w, 0.0, 2 * self.cx / w - 1.0, 0.0],
                [0.0, -2 * self.fy / h, 1.0 - 2 * self.cy / h, 0.0],
                [0.0, 0.0, (far + near) / (far - near), -2 * far * near / (far - near)],
                [0.0, 0.0, 1.0, 0.0],
            ],
            dtype=np.float64,
        )

    def closeup(self, eye_centres: np.ndarray, eye_width_mm: float, width: int = 960, height: int = 360) -> "Camera":
        """This camera magnified onto both eyes: a width x height view from the same optical centre.

        eye_centres: (2, 3) eyeball centres in the camera frame (mm); eye_width_mm: the
        margin either side, an eye's width. With m = (c_r + c_l) / 2 the eyes' midpoint,
        the view spans S = |c_l - c_r| + 2 w mm at depth m_z across its width W:

            s   = W m_z / (S fx)                 magnification
            fx' = s fx,   fy' = s fy
            cx' = W/2 - fx' m_x / m_z,   cy' = H/2 - fy' m_y / m_z

        so a pixel (u, v) of this camera lands on u' = s (u - u_m) + W/2 (and alike in v),
        u_m being m's pixel: the same view, only zoomed about the eyes' midpoint, which is
        the middle of the output. Nothing else moves: the eyes turn, narrow with a yawed
        head and tilt with a rolled one as this camera sees them (the view is not rolled
        with the head: at roll r a point x mm beside the midpoint rises x sin r, and the
        strip's half height is S H / 2W mm).

        Fed the fitted head's eyeball centres, fixed points of the head, the framing
        depends on the head pose alone: never on lids or gaze, so a blink or a glance
        cannot move it. S is constant for a rigid head, so the eyes keep their place and
        size in the output whatever the head's distance and position; pose noise of the
        fit shows only as its rotation. A caller that wants the head's translation to
        show, or a calmer framing, smooths m (and m_z) over frames before calling.
        """
        c = np.asarray(eye_centres, dtype=np.float64)
        if c.shape != (2, 3):
            raise ValueError(f"eye_centres must be (2, 3), got {c.shape}")
        if width <= 0 or height <= 0 or eye_width_mm < 0:
            raise ValueError("need a positive output size and a non-negative eye width")
        m = c.mean(axis=0)
        if m[2] <= 0:
            raise ValueError("the eyes must lie in front of the camera")
        span = float(np.linalg.norm(c[1] - c[0])) + 2.0 * eye_width_mm
        s = width * m[2] / (span * self.fx)
        fx, fy = s * self.fx, s * self.fy
        return Camera(width, height, fx, fy, width / 2.0 - fx * m[0] / m[2], height / 2.0 - fy * m[1] / m[2])
