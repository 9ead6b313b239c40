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
