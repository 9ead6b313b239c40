"""A per-patient, per-eye eye model: from the avatar's eye angle to the eye's visual axis.

The avatar's eye angle theta_m is read from where the iris sits in the fissure, on a
generic eye whose iris plane lies rho_g = IRIS_DEPTH_MM (10.5 mm) in front of its centre
of rotation, at a generic place relative to the eye corners. The patient's eye differs:
its centre of rotation sits c mm off the generic place (as seen along the axis), at a
depth rho behind the iris, and its visual axis (what fixates) is turned kappa from the
optical axis (what the iris shows). Per eye and per axis the iris displacement that the
reading encodes is then

    rho_g sin(theta_m) = c + rho sin(theta - kappa)                          (1)

with theta the visual axis's angle in the head frame (the avatar's convention: horizontal
+ = toward the image right = the subject's left, vertical + = up), so a reading gives

    theta = kappa + asin((rho_g sin(theta_m) - c) / rho).                    (2)

kappa. Its population mean is about 5 degrees horizontally, nasal (the visual axis
points nasally of the pupil's axis), and 0 vertically. Nasal is + for the right eye and
- for the left in this convention. c and kappa shift every reading alike for targets
within +-20 degrees (sin is nearly linear there), so the targets cannot tell them apart:
kappa is FIXED at the population value and c absorbs the patient's own kappa. This is
exact for the deviations (a difference of two angles of one eye's model) to first order;
the residual effect of a kappa off by 3 degrees is the change in the slope of sin over the
targets' range, under 0.3 degrees at 20 degrees of gaze.

What fits what. The binocular calibration steps (five targets: centre, right, left, up,
down) give, per eye and axis, the least-squares line y_k = c + rho s_k with y_k = rho_g
sin(theta_m,k) and s_k = sin(theta_k - kappa), theta_k the target's angle: its slope is
the gain rho. Its intercept is the eye's offset only if that eye fixated: with a manifest
squint only one eye does, and a binocular intercept calibrates the squint away. So each
eye's offset c comes from its MONOCULAR fixation, the cover step in which the other eye
is covered (`offset_from_fixation`: c = y - rho s at the centre target), and an eye found
deviating under binocular viewing (it moved to take up fixation when the other eye was
covered) takes the gain of the fixating eye (both eyes of one person have nearly the same
size), since its own binocular readings are not fixation. Without its cover step, an eye that
the cover test showed fixating under binocular viewing (it did not move when the other
eye was covered, or the other eye moved to take up fixation when it was covered) takes
its own binocular intercept. Otherwise its offset is not measured: it is taken as the
mean of the two eyes' binocular intercepts (the generic anatomy: no difference between
the eyes) with the population's spread,
POPULATION_OFFSET_SD_MM per eye. That spread comes from the resting-eye differences
measured on normal eyes (`measure/alignment.py`: horizontal difference -5..+21 degrees
over nine people, vertical -2.1..+2.2): 1.0 mm per eye horizontally (difference sd 1.4
mm, about 8 degrees), 0.2 mm vertically (about 1.5 degrees).

Without at least two targets 5 degrees apart on an axis the gain cannot be fitted: rho_g
is used with GENERIC_GAIN_SD (15%) uncertainty.

Whether the eyes followed the targets (`gain_failure`). A patient who looks at the camera
or at the doctor's face whatever the target does, or who cannot follow, gives readings
that do not move with the targets: the fitted gain is near zero (or of any size, with
scattered readings), and (2) then puts every reading beyond the eye model's reach. A
fitted gain is accepted when

    rho + 2 sd >= 7 mm  and  rho - 2 sd <= 16 mm,   and   rho > 3 sd           (3)

(sd over the draws: the readings' standard errors, the screen scale, camera place and
viewing distance): within 2 sd of RHO_RANGE_MM, the depth of the iris in front of the
centre of rotation for adult eyes of axial length 20-30 mm (8-14 mm; the generic 10.5 mm
for 24 mm), widened by about 15% for the tracker's own gain, and more than 3 sd above
zero. Otherwise the axis's calibration FAILED: its gain is rho_g with GENERIC_GAIN_SD, as
without targets, and its binocular intercept is not used (the readings were not
fixation), so the eye's offset comes from its cover step, or is the population's around
the generic model's c = 0 when neither eye's intercept on that axis is usable.

All functions work on arrays with a leading draws dimension (the uncertainty analysis's
Monte Carlo draws, `uncertainty.py`), so one call calibrates every draw.
"""
from __future__ import annotations

import numpy as np

from ..model.eyeball import IRIS_DEPTH_MM

#: Population kappa (deg) per [eye][axis]: 5 deg nasal horizontally (+ for the right eye, - for the left), 0 vertically.
KAPPA_DEG = np.array([[5.0, 0.0], [-5.0, 0.0]])
#: Spread between people of an eye's offset (mm) per axis, for an eye whose offset was not measured.
POPULATION_OFFSET_SD_MM = np.array([1.0, 0.2])
#: Relative sd of the generic gain rho_g for an axis whose gain could not be fitted.
GENERIC_GAIN_SD = 0.15
#: Least spread of target angles (deg) along an axis for fitting its gain.
MIN_TARGET_SPREAD_DEG = 5.0
#: A plausible eye's gain rho (mm), (3): iris depth for axial lengths 20-30 mm, widened for the tracker's gain.
RHO_RANGE_MM = (7.0, 16.0)
#: How many sd a fitted gain may lie outside RHO_RANGE_MM, and how many it must lie above zero, (3).
RHO_RANGE_SDS = 2.0
RHO_ZERO_SDS = 3.0
#: The gain's source on an axis whose calibration failed.
FAILED = "generic (calibration failed)"


def displacement(reading_deg: np.ndarray) -> np.ndarray:
    """y = rho_g sin(theta_m), mm: the iris displacement the avatar's reading encodes, (1)."""
    return IRIS_DEPTH_MM * np.sin(np.radians(reading_deg))


def visual_axis(reading_deg: np.ndarray, c_mm: np.ndarray, rho_mm: np.ndarray, kappa_deg: np.ndarray) -> np.ndarray:
    """theta = kappa + asin((rho_g sin(theta_m) - c) / rho), degrees, (2); NaN beyond the model's reach."""
    with np.errstate(invalid="ignore"):
        return kappa_deg + np.degrees(np.arcsin((displacement(reading_deg) - c_mm) / rho_mm))


def offset_from_fixation(reading_deg: np.ndarray, target_deg: np.ndarray, rho_mm: np.ndarray, kappa_deg: np.ndarray) -> np.ndarray:
    """c = rho_g sin(theta_m) - rho sin(theta - kappa) for an eye known to fixate the target at theta."""
    return displacement(reading_deg) - rho_mm * np.sin(np.radians(target_deg - kappa_deg))


def fit_gain(reading_deg: np.ndarray, target_deg: np.ndarray, kappa_deg: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Least-squares (c, rho) of (1) over targets, each (K,) over draws; None when the targets
    (K, n) span under MIN_TARGET_SPREAD_DEG (NaN readings: targets left out)."""
    ok = np.isfinite(reading_deg[0]) & np.isfinite(target_deg[0])
    if ok.sum() < 2 or np.ptp(target_deg[0, ok]) < MIN_TARGET_SPREAD_DEG:
        return None
    y = displacement(reading_deg[:, ok])
    s = np.sin(np.radians(target_deg[:, ok] - kappa_deg))
    ds = s - s.mean(axis=1, keepdims=True)
    rho = (ds * (y - y.mean(axis=1, keepdims=True))).sum(axis=1) / (ds**2).sum(axis=1)
    c = y.mean(axis=1) - rho * s.mean(axis=1)
    return c, rho


def gain_failure(rho_mm: np.ndarray, reading_deg: np.ndarray, target_deg: np.ndarray) -> str | None:
    """Why a fitted gain rho (K,) draws is not an eye's, (3), in words; None when it is.

    reading_deg, target_deg: (n,) the nominal readings and targets it was fitted to, for
    saying how far the readings moved for the targets' sweep."""
    value, rest = float(rho_mm[0]), rho_mm[1:][np.isfinite(rho_mm[1:])]
    sd = float(np.std(rest)) if len(rest) > 1 else 0.0
    low, high = RHO_RANGE_MM
    if value + RHO_RANGE_SDS * sd >= low and value - RHO_RANGE_SDS * sd <= high and value > RHO_ZERO_SDS * sd:
        return None
    ok = np.isfinite(reading_deg) & np.isfinite(target_deg)
    moved = (f"their reading moved {np.ptp(reading_deg[ok]):.1f}° for a {np.ptp(target_deg[ok]):.1f}° target sweep "
             f"(gain ρ {value:.2f} ± {sd:.2f} mm; an eye's is {low:g}-{high:g} mm)")
    if value - RHO_RANGE_SDS * sd > high:
        return f"the readings moved more than an eye can for the targets: {moved}"
    if value + RHO_RANGE_SDS * sd >= low:  # in range, but not told from zero
        return f"the readings scattered too much to tell whether the eyes followed the targets: {moved}"
    return f"the eyes did not follow the targets: {moved}"


def calibrate(
    binocular: tuple[np.ndarray, np.ndarray],
    monocular: list[tuple[np.ndarray, np.ndarray] | None],
    deviating: int | None,
    fixating: tuple[bool, bool],
    rng: np.random.Generator,
) -> dict[str, np.ndarray | list[str]]:
    """Each eye's offset c and gain rho, (K, 2 eyes, 2 axes) mm, for K draws (draw 0 nominal).

    binocular: (readings, targets) of the calibration steps, each (K, n steps, 2, 2) deg.
    monocular: per eye, (reading, target) (K, 2) deg at the centre while the OTHER eye was
    covered, or None. deviating: the eye that did not fixate under binocular viewing (its
    gain is the fellow eye's), or None; fixating: per eye, whether the cover test showed it
    fixating under binocular viewing. Returns c, rho, kappa (2, 2), binocular_c, and per
    eye the offset's source ("cover", "binocular" or "population"), per axis the gain's
    ("fit", "generic" without targets, or FAILED) and why a fitted gain failed, (3), or None.
    """
    readings, targets = binocular
    k = readings.shape[0]
    rho = np.full((k, 2, 2), IRIS_DEPTH_MM)
    binocular_c = np.full((k, 2, 2), np.nan)
    gain_source = [["generic", "generic"], ["generic", "generic"]]
    failure: list[list[str | None]] = [[None, None], [None, None]]
    for e in range(2):
        for a in range(2):
            fit = fit_gain(readings[:, :, e, a], targets[:, :, e, a], KAPPA_DEG[e, a])
            if fit is not None:
                failure[e][a] = gain_failure(fit[1], readings[0, :, e, a], targets[0, :, e, a])
            if fit is not None and failure[e][a] is None:
                binocular_c[:, e, a], rho[:, e, a] = fit
                gain_source[e][a] = "fit"
                continue
            rho[1:, e, a] *= 1 + GENERIC_GAIN_SD * rng.standard_normal(k - 1)
            if fit is not None:  # failed: the readings were not fixation, their intercept is no offset
                gain_source[e][a] = FAILED
                continue
            # The intercept at the generic gain: the targets' mean reading.
            ok = np.isfinite(readings[0, :, e, a])
            if ok.any():
                binocular_c[:, e, a] = offset_from_fixation(readings[:, ok, e, a], targets[:, ok, e, a],
                                                            rho[:, e, a, None], KAPPA_DEG[e, a]).mean(axis=1)
    if deviating is not None:  # its binocular readings are not fixation: the fixating eye's gain
        rho[:, deviating] = rho[:, 1 - deviating]
        gain_source[deviating] = list(gain_source[1 - deviating])
        failure[deviating] = list(failure[1 - deviating])
    c = np.empty((k, 2, 2))
    offset_source = []
    # The eyes' common offset (K, 2); the generic model's 0 without any calibration step.
    measured = np.isfinite(binocular_c[0])
    generic = np.where(measured.any(axis=0), np.nansum(binocular_c, axis=1) / np.maximum(measured.sum(axis=0), 1), 0.0)
    for e in range(2):
        if monocular[e] is not None:
            reading, target = monocular[e]
            c[:, e] = offset_from_fixation(reading, target, rho[:, e], KAPPA_DEG[e])
            offset_source.append("cover")
        elif fixating[e] and np.isfinite(binocular_c[0, e]).all():
            c[:, e] = binocular_c[:, e]
            offset_source.append("binocular")
        else:
            c[:, e] = generic
            c[1:, e] += POPULATION_OFFSET_SD_MM * rng.standard_normal((k - 1, 2))
            offset_source.append("population")
    return {"c": c, "rho": rho, "kappa": KAPPA_DEG, "binocular_c": binocular_c,
            "offset_source": offset_source, "gain_source": gain_source, "gain_failure": failure}
