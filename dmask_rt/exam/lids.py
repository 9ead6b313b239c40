"""Lid figures of the exam: lid lag on downward pursuit and the gap left at gentle closure.

Lid lag (pursuit steps). A normal upper lid follows the eye down, so MRD1 (pupil centre
to upper lid margin, mm) stays about constant while the eye's vertical angle falls. A
lagging lid stays up: sclera shows above the iris (MRD1 above the iris radius, 5.85 mm on
the model's 11.7 mm iris) and MRD1 grows as the eye goes down. Per eye, over the frames
of a pursuit step after settling (eye not closed):

    slope      = -10 dMRD1/dphi   mm per 10 degrees of downgaze (least-squares line of
                                  MRD1 against the calibrated vertical angle phi)
    scleral show = P90 over the lower half of the sweep of max(MRD1 - iris radius, 0)

and the verdict is "lid lag" when the slope exceeds LAG_SLOPE_MM_PER_10DEG (0.5 mm per
10 degrees: a lid that lags 0.5 mm per 10 degrees shows 1 mm of sclera over a 20-degree
sweep) by more than LAG_SIGNIFICANCE standard errors of the fitted line (the fit's
per-frame MRD1 noise of 0.2 mm over ~150 frames puts it near 0.05; on a noisy real
track it is larger), or the scleral show exceeds LAG_SHOW_MM (0.5 mm, above the fit's
noise), else "none". It needs the eye to have gone down with the target: the linear
trend of its angle over the step must sweep at least MIN_SWEEP_DEG, else "no data" with
that reason (a patient who keeps looking at the camera gives a cloud of noise whose
slope means nothing).

Closure (the gentle closure step): the remaining vertical gap is the median fissure
height (mm, at the pupil) over the step after settling; "complete" below CLOSED_GAP_MM
(1 mm: the tracker reads a shut eye at 0-0.5 mm), else "incomplete (lagophthalmos)".
"""
from __future__ import annotations

import numpy as np

from ..model.eyeball import IRIS_RADIUS_MM

LAG_SLOPE_MM_PER_10DEG = 0.5
LAG_SHOW_MM = 0.5
CLOSED_GAP_MM = 1.0
LAG_SIGNIFICANCE = 2.0
MIN_FRAMES = 10
MIN_SWEEP_DEG = 5.0


def lid_lag(time_s: np.ndarray, vertical_deg: np.ndarray, mrd1_mm: np.ndarray) -> dict:
    """Slope (mm per 10 deg of downgaze, with its standard error), scleral show (mm) and
    verdict of one eye over a pursuit."""
    ok = np.isfinite(vertical_deg) & np.isfinite(mrd1_mm)
    t, phi, mrd1 = time_s[ok], vertical_deg[ok], mrd1_mm[ok]
    empty = {"frames": int(len(phi)), "slope_mm_per_10deg_down": None, "slope_se": None, "scleral_show_mm": None}
    if len(phi) < MIN_FRAMES:
        return {"verdict": "no data", "reason": f"{len(phi)} frames with the eye open", **empty}
    trend = float(np.polyfit(t, phi, 1)[0] * np.ptp(t))
    if abs(trend) < MIN_SWEEP_DEG:
        return {"verdict": "no data", "reason": f"the eye did not follow the target (its angle's trend swept {abs(trend):.1f}°)", **empty}
    (a, _), cov = np.polyfit(phi, mrd1, 1, cov=True)
    slope, se = -10.0 * float(a), 10.0 * float(np.sqrt(max(cov[0, 0], 0.0)))
    lower = phi <= np.median(phi)
    show = float(np.percentile(np.maximum(mrd1[lower] - IRIS_RADIUS_MM, 0.0), 90))
    lag = (slope > LAG_SLOPE_MM_PER_10DEG and slope - LAG_SIGNIFICANCE * se > 0.0) or show > LAG_SHOW_MM
    return {"verdict": "lid lag" if lag else "none", "reason": None, "frames": int(len(phi)),
            "slope_mm_per_10deg_down": slope, "slope_se": se, "scleral_show_mm": show,
            "sweep_deg": [float(phi.min()), float(phi.max())]}


def closure_gap(fissure_height_mm: np.ndarray) -> dict:
    """The gap left at gentle closure (median fissure height, mm) and the verdict, for one eye."""
    h = fissure_height_mm[np.isfinite(fissure_height_mm)]
    if len(h) == 0:
        return {"verdict": "no data", "gap_mm": None}
    gap = float(np.median(h))
    return {"verdict": "complete" if gap < CLOSED_GAP_MM else "incomplete (lagophthalmos)", "gap_mm": gap}
