"""How sure the exam's angles are: Monte Carlo draws of everything assumed or measured.

Every reported angle and deviation is computed for DRAWS (200) draws of the inputs at
once (arrays with a leading draws dimension, draw 0 being the nominal inputs, the
reported value) and given as value +- 1 sd of the other draws. A fixed seed makes
the report reproducible. What is drawn, each normal with these sds:

- the screen's scale mm_per_px: 2% when the patient matched a bank card on screen, 20%
  when assumed (a CSS px is 0.17-0.3 real mm on laptops);
- the camera's place relative to the page: 3 mm when the patient confirmed it, else
  10 mm horizontally and 5 mm vertically (webcams sit on the top bezel, mostly centred);
- the viewing distance: 15%, scaling the fitted head translation as a whole (the fit
  assumes a 53-degree camera field of view, `model/camera.py`; a different lens scales
  the distance and, the face's image place being fixed, x and y with it);
- each step's measurement: its per-frame median reading +- its standard error, computed
  in `steps.py` from the per-frame scatter with n_eff = n / 3 (neighbouring frames'
  fitting errors are correlated);
- in `calibration.py`: the offset of an eye not calibrated by a cover step (population
  spread) and a gain that could not be fitted.

Linearising instead would miss the asin of the eye model near its reach and the
correlations through the calibration (the same screen scale moves every target).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .calibration import GENERIC_GAIN_SD
from .geometry import Screen

DRAWS = 200
SEED = 12
SCALE_SD = {"card": 0.02, "assumed": 0.20}
CAMERA_SD_MM = {"confirmed": (3.0, 3.0), "assumed": (10.0, 5.0)}
DISTANCE_SD = 0.15
#: Standard error of a median of normal data relative to that of the mean.
MEDIAN_SE_FACTOR = 1.2533
#: Neighbouring frames' errors are correlated: n frames count as n / 3 independent ones.
FRAMES_PER_INDEPENDENT = 3.0


@dataclass(frozen=True)
class Draws:
    """(K,) draws of the assumed quantities; index 0 is the nominal value."""

    scale: np.ndarray        # multiplies mm_per_px
    camera_dx_mm: np.ndarray
    camera_dy_mm: np.ndarray
    distance: np.ndarray     # multiplies the head translation

    @property
    def count(self) -> int:
        return len(self.scale)


def draw(screen: Screen, rng: np.random.Generator, count: int = DRAWS) -> Draws:
    """`count` + 1 draws (the nominal first) of the screen scale, camera place and viewing distance."""
    def normal(sd: float) -> np.ndarray:
        return np.concatenate([[0.0], sd * rng.standard_normal(count)])

    scale_sd = SCALE_SD.get(screen.mm_per_px_source, SCALE_SD["assumed"])
    cam_sd = CAMERA_SD_MM.get(screen.camera_source, CAMERA_SD_MM["assumed"])
    return Draws(1 + normal(scale_sd), normal(cam_sd[0]), normal(cam_sd[1]), 1 + normal(DISTANCE_SD))


def median_and_se(values: np.ndarray) -> tuple[float, float]:
    """A step's median of per-frame values and its standard error (n_eff = n / 3); NaN when empty."""
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return (float(values[0]) if len(values) else np.nan), np.nan
    n_eff = max(len(values) / FRAMES_PER_INDEPENDENT, 1.0)
    return float(np.median(values)), MEDIAN_SE_FACTOR * float(np.std(values, ddof=1)) / np.sqrt(n_eff)


def describe(screen: Screen) -> str:
    """The uncertainty statement for the report."""
    if not screen.known:
        return "The patient's page has not reported its screen: the targets' places are unknown, so no angle is given against a target."
    scale = SCALE_SD.get(screen.mm_per_px_source, SCALE_SD["assumed"])
    cam = CAMERA_SD_MM.get(screen.camera_source, CAMERA_SD_MM["assumed"])
    return (
        f"Values are given as value ± 1 sd over {DRAWS} Monte Carlo draws of: the screen scale "
        f"({screen.mm_per_px:.4f} mm/px, {screen.mm_per_px_source}, ±{100 * scale:.0f}%), the camera's place "
        f"({screen.camera_source}, ±{cam[0]:.0f} mm horizontally, ±{cam[1]:.0f} mm vertically), the viewing distance "
        f"(from the fit's assumed 53° camera field of view, ±{100 * DISTANCE_SD:.0f}%), each step's measurement "
        "(standard error of its frames, one independent frame in three), for an eye without its cover step, "
        "the population spread of the eye's offset and, for an axis whose gain was not calibrated (no targets, or the "
        f"calibration failed), the generic gain's ±{100 * GENERIC_GAIN_SD:.0f}%."
    )
