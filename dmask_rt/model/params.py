"""The avatar's per-frame parameters: everything that survives the mask.

Head pose (R, t) places the generic face in the camera frame; `expression` and `lids`
weight its linear shapes; `eyes` holds each eyeball's two rotation angles relative to
the head; `fissure` stretches each eye's fissure to the patient's length in iris
diameters. Of the patient's face shape only that proportion survives, one steady
number per eye that a doctor reads (the horizontal fissure length) and that the eye
turns are read against (`fit/eye_transfer.py`); identity lives in the landmarks, which
are discarded after the fit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .eyelid import LID_SHAPE_NAMES

FISSURE_NAMES = ("fissure_r_stretch", "fissure_l_stretch")
EYE_ANGLE_NAMES = ("eye_r_horizontal_deg", "eye_r_vertical_deg", "eye_l_horizontal_deg", "eye_l_vertical_deg")
POSE_NAMES = ("head_yaw_deg", "head_pitch_deg", "head_roll_deg", "head_x_mm", "head_y_mm", "head_z_mm")


def param_names(n_expression: int) -> tuple[str, ...]:
    """Column names of `AvatarParams.to_dict()`, in order."""
    return (
        POSE_NAMES
        + tuple(f"expr_{k}" for k in range(n_expression))
        + LID_SHAPE_NAMES
        + EYE_ANGLE_NAMES
        + FISSURE_NAMES
        + ("confidence", "fit_rms_px")
    )


def euler_angles(rotation: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in radians with R = Rz(roll) @ Ry(yaw) @ Rx(pitch).

    In the camera frame (x right, y down, z forward) yaw turns the face toward the image
    right, pitch tilts it (positive = chin down), roll spins it in the image plane.
    """
    r = rotation
    yaw = math.asin(max(-1.0, min(1.0, -r[2, 0])))
    pitch = math.atan2(r[2, 1], r[2, 2])
    roll = math.atan2(r[1, 0], r[0, 0])
    return yaw, pitch, roll


def head_rotation(yaw_deg: np.ndarray, pitch_deg: np.ndarray, roll_deg: np.ndarray) -> np.ndarray:
    """(..., 3, 3) R = Rz(roll) Ry(yaw) Rx(pitch) from the logged angles in degrees: the inverse of
    `euler_angles`, batched."""
    y, p, r = (np.radians(np.asarray(a, float)) for a in (yaw_deg, pitch_deg, roll_deg))
    cy, sy, cp, sp, cr, sr = np.cos(y), np.sin(y), np.cos(p), np.sin(p), np.cos(r), np.sin(r)
    return np.stack([
        np.stack([cr * cy, cr * sy * sp - sr * cp, cr * sy * cp + sr * sp], axis=-1),
        np.stack([sr * cy, sr * sy * sp + cr * cp, sr * sy * cp - cr * sp], axis=-1),
        np.stack([-sy, cy * sp, cy * cp], axis=-1),
    ], axis=-2)


@dataclass
class AvatarParams:
    rotation: np.ndarray     # (3, 3) head frame -> camera frame
    translation: np.ndarray  # (3,) mm, camera-frame position of the midpoint between the eyes
    expression: np.ndarray   # (K,) weights of the expression shapes, in standard deviations
    lids: np.ndarray         # (8,) as eyelid.LID_SHAPE_NAMES
    eyes: np.ndarray         # (2, 2) radians: [eye][horizontal, vertical], eye 0 = subject's right
    confidence: float = 1.0
    fit_rms_px: float = 0.0
    fissure: np.ndarray = field(default_factory=lambda: np.zeros(2))  # (2,) eyelid.fissure_stretches weights

    def copy(self) -> "AvatarParams":
        return AvatarParams(
            self.rotation.copy(), self.translation.copy(), self.expression.copy(),
            self.lids.copy(), self.eyes.copy(), self.confidence, self.fit_rms_px, self.fissure.copy(),
        )

    def to_dict(self) -> dict[str, float]:
        """Flat, human-readable values (degrees, mm) keyed by `param_names`."""
        yaw, pitch, roll = euler_angles(self.rotation)
        values = (
            [math.degrees(yaw), math.degrees(pitch), math.degrees(roll)]
            + self.translation.tolist()
            + self.expression.tolist()
            + self.lids.tolist()
            + np.degrees(self.eyes).ravel().tolist()
            + self.fissure.tolist()
            + [self.confidence, self.fit_rms_px]
        )
        names = param_names(len(self.expression))
        return {n: float(v) for n, v in zip(names, values)}
