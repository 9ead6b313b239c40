"""After an exam: every later frame's eye angles and deviation in the patient's calibrated frame.

The exam's calibration (`calibration.py`) maps each eye's avatar reading to its visual
axis, equation (2). Outside the exam there is no known target, but both eyes look at the
same near point (the screen, or the camera on top of it), and the convergence that needs
differs little across a screen at arm's length, so the deviation is measured, as in
`measure/alignment.py`, beyond the convergence of fixating the camera:

    D_h = (theta_r - theta_l) - vergence,    D_v = phi_r - phi_l

with theta, phi the calibrated horizontal and vertical angles and vergence the frame's
`vergence_deg`. Only a calibration that measured the deviation between the eyes (both
offsets from the cover steps or a fixating eye, no failed gain) is applied: otherwise
the live figures stay the uncalibrated ones.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..measure.alignment import AXES, prism_dioptres
from .calibration import visual_axis

SIDES = ("r", "l")
#: The per-frame values this adds (degrees, prism dioptres).
CALIBRATED_NAMES = (
    tuple(f"calibrated_eye_{s}_{a}_deg" for s in SIDES for a in AXES)
    + tuple(f"calibrated_deviation_{a}_{u}" for a in AXES for u in ("deg", "pd"))
)


def eye_model(results: Mapping) -> dict[str, np.ndarray] | None:
    """(c, rho, kappa), each (2 eyes, 2 axes), of an exam's results; None unless the
    deviation between the eyes was calibrated and every gain is valid."""
    calibration = results.get("calibration") or {}
    eyes = calibration.get("eyes") or {}
    if not calibration.get("deviation_calibrated") or set(eyes) != set(SIDES):
        return None
    if any(eyes[s]["valid"][a] is False for s in SIDES for a in AXES):
        return None
    model = {
        "c": np.array([[eyes[s][f"c_{a}_mm"]["value"] for a in AXES] for s in SIDES], dtype=float),
        "rho": np.array([[eyes[s][f"rho_{a}_mm"]["value"] for a in AXES] for s in SIDES], dtype=float),
        "kappa": np.array([[eyes[s][f"kappa_{a}_deg"] for a in AXES] for s in SIDES], dtype=float),
    }
    return model if all(np.isfinite(v).all() for v in model.values()) else None


def calibrated_values(model: Mapping[str, np.ndarray], values: Mapping[str, float]) -> dict[str, float]:
    """CALIBRATED_NAMES for one frame's values (`Masker.PARAM_NAMES`); empty beyond the model's reach."""
    readings = np.array([[values[f"eye_{s}_{a}_deg"] for a in AXES] for s in SIDES], dtype=float)
    theta = visual_axis(readings, model["c"], model["rho"], model["kappa"])
    if not np.isfinite(theta).all():
        return {}
    out = {f"calibrated_eye_{s}_{a}_deg": float(theta[e, k]) for e, s in enumerate(SIDES) for k, a in enumerate(AXES)}
    deviation = {"horizontal": theta[0, 0] - theta[1, 0] - values["vergence_deg"], "vertical": theta[0, 1] - theta[1, 1]}
    for axis, d in deviation.items():
        out[f"calibrated_deviation_{axis}_deg"] = float(d)
        out[f"calibrated_deviation_{axis}_pd"] = prism_dioptres(float(d))
    return out
