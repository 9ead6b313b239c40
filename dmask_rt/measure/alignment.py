"""Between the two eyes: ocular deviation and lid asymmetry for one fitted frame.

With theta_r, theta_l the eyes' horizontal angles and phi_r, phi_l their vertical ones
(degrees, from the fitted model; horizontal + = toward the image right, vertical + = up):

    common gaze           g_h = (theta_r + theta_l) / 2,  g_v = (phi_r + phi_l) / 2
    per-eye deviation     theta_e - g_h,  phi_e - g_v   (each eye's share; the two are opposite)
    difference            theta_r - theta_l,  phi_r - phi_l   (right minus left)
    prism dioptres        PD = 100 tan(angle)

Signs of the difference: horizontal > 0 means the eyes converge (the right eye is
turned toward the image right = toward the nose, relative to the left): eso direction;
< 0 diverge: exo direction. Vertical > 0 means the right eye sits higher (right hyper).

A near camera makes normal eyes converge: at 50 cm, each eye turns about 3.6 degrees
inward (half of the 63 mm interocular distance over 500 mm). On the six development
clips (normal eyes, camera distance unknown) the median difference reads -5 to +21
degrees: more spread than convergence explains, so part of it is how the generic
eyeball sits relative to each patient's real eye. A steady horizontal difference is
therefore not by itself a squint; what this method measures reliably is how the
difference behaves as the common gaze moves (p01: on a 64-degree gaze swing it changed
by 4.6 degrees, slope -0.07, where one eye not moving at all would give a slope of +-2)
and how it changes over time.

Trust: per-frame eye-angle noise is about 1.1-1.3 degrees per eye on synthetic frames
at 50 cm with 0.3 px landmark noise, about 1.9 degrees for the difference
(tests/test_measure.py); the mean over 60 frames recovers a 10 degree squint within
1 degree there. Small deviations (a few degrees, a few PD) need long averages and sit
at the edge of what this method can resolve.

Lid asymmetry: MRD1 right minus left (mm), > 0 = the right upper lid sits higher
(or the left droops).
"""
from __future__ import annotations

import math

from ..model.params import AvatarParams

AXES = ("horizontal", "vertical")


def prism_dioptres(angle_deg: float) -> float:
    """PD = 100 tan(angle): centimetres of displacement at one metre."""
    return 100.0 * math.tan(math.radians(angle_deg))


def alignment_measures(params: AvatarParams, eyelids: dict[str, float]) -> dict[str, float]:
    """Deviation, right-minus-left difference (deg and PD) and MRD1 asymmetry.

    `eyelids` is `eyelid_measures` of the same frame (only mrd1_r_mm / mrd1_l_mm are read).
    Keys: gaze_{axis}_deg, deviation_{r|l}_{axis}_{deg|pd}, difference_{axis}_{deg|pd},
    mrd1_asymmetry_mm.
    """
    out: dict[str, float] = {}
    for a, axis in enumerate(AXES):
        right, left = (math.degrees(params.eyes[e, a]) for e in range(2))
        common = (right + left) / 2
        out[f"gaze_{axis}_deg"] = common
        for side, angle in (("r", right), ("l", left)):
            out[f"deviation_{side}_{axis}_deg"] = angle - common
            out[f"deviation_{side}_{axis}_pd"] = prism_dioptres(angle - common)
        out[f"difference_{axis}_deg"] = right - left
        out[f"difference_{axis}_pd"] = prism_dioptres(right - left)
    out["mrd1_asymmetry_mm"] = eyelids["mrd1_r_mm"] - eyelids["mrd1_l_mm"]
    return out
