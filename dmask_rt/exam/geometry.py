"""Where a fixation target is in the camera's frame, and the eye angles that look at it.

The page is shown full screen, and the screen lies in the camera's plane (z = 0) below
the camera (a laptop's or a monitor's webcam sits on the top bezel). The exam record
gives the page's size in CSS px, the millimetres per px (matched to a bank card, or
assumed) and the camera's place relative to the page's top-centre: x mm toward the page's
right as the patient sees it (the patient's right) and y mm above the page's top edge.

The camera frame is OpenCV's: x toward the image right, y down, z forward. The patient
faces the camera, so the patient's right (the page's right as the patient sees it) is
the image LEFT, -x. A target at page fraction (u, v) (u from the page's left edge to its
right edge as the patient sees it, v from the top down) lies (u - 0.5) W_mm to the
patient's right of the page's centre line and v H_mm below the page's top edge; relative
to the camera that is

    x = -((u - 0.5) W_mm - camera_x_mm),   y = camera_y_mm + v H_mm,   z = 0,

with W_mm = width_px * mm_per_px and H_mm = height_px * mm_per_px (a target on the
camera's own vertical line, u - 0.5 = camera_x_mm / W_mm, is at x = 0).

The angles at which each eye looks at a target follow from the fitted head pose, as
`measure/alignment.fixation_angles` computes them: the eye's centre in the camera frame
is R C_e + t, the direction to the target in the head frame R^T (T - (R C_e + t)), and
its horizontal and vertical angles are those the avatar's eye would have to point at it.
The head rotation is rebuilt from the logged angles, R = Rz(roll) Ry(yaw) Rx(pitch)
(`model/params.head_rotation`, the inverse of `euler_angles`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Screen:
    """The page during the exam, from the exam record's "screen"."""

    width_px: float
    height_px: float
    mm_per_px: float
    mm_per_px_source: str  # "card" (matched to a bank card on screen) or "assumed"
    camera_x_mm: float
    camera_y_mm: float
    camera_source: str     # "confirmed" or "assumed"

    @property
    def known(self) -> bool:
        return np.isfinite(self.mm_per_px)

    @classmethod
    def from_record(cls, screen: dict | None) -> "Screen":
        """The record's screen; without one (the page has not reported it yet) every size is NaN,
        and so is every target's place."""
        if screen is None:
            return cls(np.nan, np.nan, np.nan, "unknown", 0.0, 0.0, "unknown")
        return cls(
            float(screen["width_px"]), float(screen["height_px"]), float(screen["mm_per_px"]),
            str(screen.get("mm_per_px_source", "assumed")),
            float(screen.get("camera_x_mm", 0.0)), float(screen.get("camera_y_mm", 0.0)),
            str(screen.get("camera_source", "assumed")),
        )


def target_point(
    screen: Screen, u: np.ndarray | float, v: np.ndarray | float,
    scale: np.ndarray | float = 1.0, camera_dx_mm: np.ndarray | float = 0.0, camera_dy_mm: np.ndarray | float = 0.0,
) -> np.ndarray:
    """(..., 3) camera-frame mm of the target at page fraction (u, v) (module docstring).

    `scale` multiplies mm_per_px and `camera_d{x,y}_mm` shift the camera's place: the
    uncertainty analysis draws them; arrays broadcast together.
    """
    mm = screen.mm_per_px * np.asarray(scale, float)
    x = -((np.asarray(u, float) - 0.5) * screen.width_px * mm - (screen.camera_x_mm + np.asarray(camera_dx_mm, float)))
    y = screen.camera_y_mm + np.asarray(camera_dy_mm, float) + np.asarray(v, float) * screen.height_px * mm
    x, y = np.broadcast_arrays(x, y)
    return np.stack([x, y, np.zeros_like(x)], axis=-1)
