"""The guided exam's clinical figures, from its record and its param rows.

`analyse(record, rows)` runs, in order:

1. `steps.step_runs`: each protocol step's latest done run, its rows after settling and
   its status ("measured", "not measured" with the reason, "not reached").
2. Per frame: the target's place (`geometry.target_point`, moving along a pursuit's path)
   and the angles at which each eye would fixate it given the fitted head pose
   (`measure/alignment.fixation_angles`): the intended angles.
3. Per fixation step: each eye's median avatar reading with its standard error, and the
   intended angles, for every Monte Carlo draw of the screen scale, camera place and
   viewing distance (`uncertainty.py`; draw 0 nominal).
4. Cover steps with the generic eye model (reading = visual axis): which eye, if any,
   moved to take up fixation (`cover.py`); that eye did not fixate under binocular
   viewing, so its gain comes from the fellow eye.
5. `calibration.calibrate`: gains from the binocular calibration steps, each eye's offset
   from its monocular fixation in the cover step of the other eye (else the population's).
   An axis whose fitted gain is not an eye's (the patient did not follow the targets,
   `calibration.gain_failure`) falls back to the generic eye model with its uncertainty,
   and a warning heads the results.
6. Per step, per eye, the calibrated visual axis theta (`calibration.visual_axis`), its
   difference from the intended angle (the eye's deviation from the target; in the
   diagnostic positions the under- or over-action), and between the eyes

       D_h = dev_r,h - dev_l,h   (+ = eso: both eyes turned toward the nose, ET; - = XT)
       D_v = dev_r,v - dev_l,v   (+ = the right eye higher, R/L HT; - = L/R HT)

   in degrees and prism dioptres (PD = 100 tan D), each as value +- 1 sd over the draws.
   A gaze or hold step is "measured" only with both components of its deviation; one
   without (no screen yet, an eye hidden throughout, a reading beyond the eye model's
   reach) is "not measured" with that reason, its partial figures kept.
7. Lids (MRD1/MRD2 per step, lid lag on pursuit, closure gap: `lids.py`), the rest step
   (blink rate, `measure/blinks.py`; fixation stability = sd of the calibrated angles with
   hidden eyes left out; nystagmus, `measure/series.py`), gaze-evoked nystagmus in the
   hold steps, and the cover-uncover findings.

The result is plain JSON (None where nothing could be measured, never NaN). It works on a partial
record (missing steps are "not reached"), as the live side calls it after every step.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache

import numpy as np

from ..measure.alignment import fixation_angles, prism_dioptres
from ..measure.blinks import blink_rate_per_minute, lid_events
from ..measure.series import MeasureSeries, _plain, nystagmus_verdict
from ..model.generic_face import GenericFace
from . import calibration, cover, lids, uncertainty
from ..model.params import head_rotation
from .geometry import Screen, target_point
from .protocol import CENTRE, Step, protocol_json
from .steps import MIN_FRAMES, Frames, StepRun, nan_ok, step_runs

SIDES = ("r", "l")
SIDE_WORDS = {"r": "right", "l": "left"}
AXES = ("horizontal", "vertical")
FORMAT = "dmask-exam-results"
VERSION = 1
#: Samples per second kept in the results' traces (for the report's plot).
TRACE_RATE_HZ = 10.0
#: Steps whose rows show each eye fixating one still target (or, for cover, one eye fixating).
FIXATION_KINDS = ("calibration", "gaze", "rest", "hold", "cover", "uncover")
NYSTAGMUS_STEPS = ("rest", "hold_right", "hold_left")
#: Steps whose figure is the deviation between the eyes: "measured" only with it.
DEVIATION_KINDS = ("gaze", "hold")

_pd = np.vectorize(prism_dioptres, otypes=[float])
#: Readings (K, 2, 2) -> calibrated visual-axis angles, with every draw's own calibration.
Calibrated = Callable[[np.ndarray], np.ndarray]


@lru_cache(maxsize=1)
def _face() -> GenericFace:
    return GenericFace.load()


def _vs(draws: np.ndarray) -> dict:
    """{"value", "sd"} of a (K,) draws array: draw 0 and the sd of the others (1 sd); None for NaN."""
    value = float(draws[0])
    rest = draws[1:][np.isfinite(draws[1:])]
    if not np.isfinite(value):
        return {"value": None, "sd": None}
    return {"value": value, "sd": float(np.std(rest)) if len(rest) > 1 else None}


def deviation_words(horizontal_pd: dict, vertical_pd: dict) -> str:
    """"17.6 PD ET, 2.0 PD R/L HT"-style words for a deviation between the eyes ({"value", "sd"} in PD):
    a component within 2 sd of zero is left out."""
    parts = []
    for vs, plus, minus in ((horizontal_pd, "ET", "XT"), (vertical_pd, "R/L HT", "L/R HT")):
        value, sd = vs["value"], vs["sd"] or 0.0
        if value is not None and abs(value) > 2 * sd:
            parts.append(f"{abs(value):.1f} PD {plus if value > 0 else minus}")
    if all(vs["value"] is None for vs in (horizontal_pd, vertical_pd)):
        return "not measured"
    return ", ".join(parts) if parts else "no deviation beyond 2 sd"


class _Exam:
    """One analysis: the rows as arrays, the draws, and the per-window statistics."""

    def __init__(self, record: Mapping, rows: Sequence[Mapping], draws: int, seed: int) -> None:
        self.face = _face()
        self.protocol = tuple(Step.from_json(s) for s in (record.get("protocol") or protocol_json()))
        self.screen = Screen.from_record(record["screen"])
        self.rows = rows
        self.frames = f = Frames(rows)
        self.runs = step_runs(self.protocol, record.get("steps") or [], f)
        self.rng = np.random.default_rng(seed)
        self.draws = uncertainty.draw(self.screen, self.rng, draws)
        self.pose = np.column_stack([f.column(n) for n in
                                     ("head_yaw_deg", "head_pitch_deg", "head_roll_deg", "head_x_mm", "head_y_mm", "head_z_mm")]
                                    ).reshape(len(f), 6)
        uv = np.full((len(f), 2), np.nan)
        for run in self.runs.values():
            if run.all_frames is not None and len(run.all_frames):
                uv[run.all_frames] = [run.step.target(t - run.start_s) for t in f.time[run.all_frames]]
        rotation = head_rotation(*self.pose[:, :3].T)
        self.intended = fixation_angles(self.face, rotation, self.pose[:, 3:], target_point(self.screen, uv[:, 0], uv[:, 1]))
        self.readings = f.readings(f.hidden)       # for angles: hidden eyes left out
        self.readings_open = f.readings(f.closed)  # for lids against the angle: only closed eyes left out

    def window(self, idx: np.ndarray, step: Step | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(readings, intended), each (K, 2, 2) draws over the rows `idx`: medians with their
        standard error drawn; with a still `step`, the intended angles drawn over the screen,
        camera and distance (at the window's median head pose)."""
        k = self.draws.count
        readings = np.empty((k, 2, 2))
        for e in range(2):
            for a in range(2):
                median, se = uncertainty.median_and_se(self.readings[idx, e, a])
                readings[:, e, a] = median
                readings[1:, e, a] += (0.0 if np.isnan(se) else se) * self.rng.standard_normal(k - 1)
        with nan_ok():
            nominal = np.nanmedian(self.intended[idx], axis=0) if len(idx) else np.full((2, 2), np.nan)
            pose = np.nanmedian(self.pose[idx], axis=0) if len(idx) else np.full(6, np.nan)
        intended = np.broadcast_to(nominal, (k, 2, 2)).copy()
        if step is not None:
            d = self.draws
            point = target_point(self.screen, *step.target(0.0), d.scale, d.camera_dx_mm, d.camera_dy_mm)
            angles = fixation_angles(self.face, head_rotation(*pose[:3]), pose[3:] * d.distance[:, None], point)
            intended += angles - angles[0]
        return readings, intended


def analyse(record: Mapping, rows: Sequence[Mapping], draws: int = uncertainty.DRAWS,
            seed: int = uncertainty.SEED, traces: bool = True) -> dict:
    """The exam's figures as plain JSON (module docstring); `rows` are the param-log rows.

    `traces` (the per-frame angles at TRACE_RATE_HZ, which the report plots) are most of
    the result's size, about 100 kB for a whole exam: leave them out for live updates."""
    exam = _Exam(record, rows, draws, seed)
    runs = exam.runs
    stats = {
        name: exam.window(run.frames, run.step) for name, run in runs.items()
        if run.measured and run.step.kind in FIXATION_KINDS and len(run.step.path) == 1
    }

    # Cover steps, first with the generic eye model: which eye took up fixation.
    covers = {name: run for name, run in runs.items() if run.step.kind == "cover"}
    baselines = {name: _baseline(exam, run, stats) for name, run in covers.items()}
    took_up_fixation: list[bool | None] = [None, None]  # per eye, when the other was covered
    for name, run in covers.items():
        if name in stats and baselines[name] is not None:
            eye = 1 - SIDES.index(run.step.covered)
            movement = _movement(stats[name], baselines[name], eye, None)
            if cover.measured(movement):
                took_up_fixation[eye] = bool(cover.moved(movement).any())
    deviating_seen = [e for e in range(2) if took_up_fixation[e]]
    deviating = deviating_seen[0] if len(deviating_seen) == 1 else None
    # An eye fixated under binocular viewing if it did not move when the other was covered, or the other did.
    fixating = tuple(took_up_fixation[e] is False or took_up_fixation[1 - e] is True for e in range(2))

    calibration_names = [n for n, run in runs.items() if run.step.kind == "calibration" and n in stats]
    # (readings, intended), each (K, steps, 2, 2): the calibration steps side by side.
    binocular = tuple(np.stack([stats[n][i] for n in calibration_names], axis=1) if calibration_names
                      else np.empty((exam.draws.count, 0, 2, 2)) for i in range(2))
    monocular: list[tuple[np.ndarray, np.ndarray] | None] = [None, None]
    for name, run in covers.items():
        eye = 1 - SIDES.index(run.step.covered)
        if name in stats and np.isfinite(stats[name][0][0, eye]).all():
            monocular[eye] = (stats[name][0][:, eye], stats[name][1][:, eye])
    model = calibration.calibrate(binocular, monocular, deviating, fixating, exam.rng)
    c, rho, kappa = model["c"], model["rho"], model["kappa"]

    def calibrated(readings: np.ndarray) -> np.ndarray:
        return calibration.visual_axis(readings, c, rho, kappa)

    results_steps = {name: _step_result(exam, run, stats.get(name), calibrated, c[0], rho[0])
                     for name, run in runs.items()}
    theta = calibration.visual_axis(exam.readings, c[0], rho[0], kappa)            # (N, 2, 2) per frame
    theta_open = calibration.visual_axis(exam.readings_open, c[0], rho[0], kappa)

    residual = np.full((2, 2), np.nan)
    if calibration_names:
        err = calibration.visual_axis(binocular[0][0], c[0], rho[0], kappa) - binocular[1][0]  # (n, 2, 2) nominal
        with nan_ok():  # an eye with no calibration reading has no residual
            residual = np.sqrt(np.nanmean(err**2, axis=0))
        if deviating is not None:  # its calibration readings were not fixation: no residual to speak of
            residual[deviating] = np.nan
    deviation_calibrated = "population" not in model["offset_source"]

    results = {
        "format": FORMAT, "version": VERSION,
        "started": record.get("started"),
        "calibration": _calibration_result(model, residual, deviating, deviation_calibrated),
        "uncertainty": {"statement": uncertainty.describe(exam.screen), "draws": exam.draws.count - 1, "seed": seed,
                        "mm_per_px_source": exam.screen.mm_per_px_source, "camera_source": exam.screen.camera_source},
        "steps": [{"name": name, **result} for name, result in results_steps.items()],  # in protocol order
        "nine_gaze": {run.step.gaze: _motility(name, results_steps[name]) for name, run in runs.items() if run.step.kind == "gaze"},
        "holds": {name: _motility(name, results_steps[name]) for name, run in runs.items() if run.step.kind == "hold"},
        "lid_lag": {name: _lid_lag(exam, run, theta_open) for name, run in runs.items() if run.step.kind == "pursuit"},
        "closure": {name: _closure(exam, run) for name, run in runs.items() if run.step.kind == "closure"},
        "rest": {name: _rest(exam, run, theta) for name, run in runs.items() if run.step.kind == "rest"},
        "nystagmus": {name: _nystagmus(exam, runs[name]) for name in NYSTAGMUS_STEPS if name in runs},
        "cover": {name: _cover(exam, run, stats, baselines, calibrated, deviating_seen)
                  for name, run in runs.items() if run.step.kind in ("cover", "uncover")},
        "traces": _traces(exam, theta) if traces else None,
    }
    results["findings"] = _findings(results)
    results["summary"] = {
        "not_measured": [{"step": n, "reason": r["reason"]} for n, r in results_steps.items() if r["status"] == "not measured"],
        "not_reached": [n for n, r in results_steps.items() if r["status"] == "not reached"],
        "measured": [n for n, r in results_steps.items() if r["status"] == "measured"],
        "warnings": results["calibration"]["warnings"]
        + [f"{n}: {c['warning']}" for n, c in results["cover"].items() if c.get("warning")],
    }
    return _plain(results)


def _motility(name: str, step: dict) -> dict:
    """A gaze position's entry: its step, status, deviation and eyes (rotation minus target, lids)."""
    return {"step": name, **{k: step[k] for k in ("status", "reason", "deviation", "eyes")}}


def _movement(after: tuple, before: tuple, eye: int, calibrated: Calibrated | None) -> np.ndarray:
    """(K, 2) the eye's change of angle relative to the target from `before` to `after` windows;
    readings as they are (generic model) when `calibrated` is None."""
    a, b = (w[0] if calibrated is None else calibrated(w[0]) for w in (after, before))
    # The screen draws move both windows' targets alike: only the head's own change counts.
    return (a[:, eye] - b[:, eye]) - (after[1][0, eye] - before[1][0, eye])


def _baseline(exam: _Exam, run: StepRun, stats: dict) -> tuple | None:
    """The eyes under binocular viewing of the centre before a cover step (`cover.py`)."""
    if not run.measured:
        return None
    t0 = run.start_s
    for other in exam.runs.values():
        s = other.step
        if (other.start_s is not None and other.start_s <= t0 - 0.5 <= other.end_s and s.kind in ("gaze", "rest", "uncover", "calibration")
                and len(s.path) == 1 and s.target(0.0) == CENTRE):
            before = np.flatnonzero((exam.frames.time >= t0 - 1.0) & (exam.frames.time < t0) & exam.frames.face)
            if len(before) >= MIN_FRAMES:
                return exam.window(before)
    for name in ("rest", "gaze_primary", "calibration_primary"):
        if name in stats:
            return stats[name]
    return None


def _lid_figures(exam: _Exam, idx: np.ndarray) -> dict:
    out = {}
    for e, s in enumerate(SIDES):
        keep = idx[~exam.frames.closed[idx, e] & exam.frames.face[idx]]
        out[s] = {f"{m}_{u}": (float(np.nanmedian(v)) if np.isfinite(v).any() else None)
                  for m in ("mrd1", "mrd2") for u in ("mm", "iris") for v in [exam.frames.column(f"{m}_{s}_{u}")[keep]]}
    return out


def _step_result(exam: _Exam, run: StepRun, window: tuple | None, calibrated: Calibrated,
                 c_mm: np.ndarray, rho_mm: np.ndarray) -> dict:
    step = run.step
    out = {"index": exam.protocol.index(step), "label": step.label, "kind": step.kind, "gaze": step.gaze,
           **run.to_json(), "eyes": None, "deviation": None}
    if not run.measured:
        return out
    lid = _lid_figures(exam, run.frames)
    if window is None:  # pursuit or closure: lids only
        out["eyes"] = lid
        return out
    readings, intended = window
    theta = calibrated(readings)
    dev = theta - intended
    out["eyes"] = {
        s: {**{f"{axis}_deg": _vs(theta[:, e, a]) for a, axis in enumerate(AXES)},
            **{f"intended_{axis}_deg": float(intended[0, e, a]) for a, axis in enumerate(AXES)},
            **{f"vs_target_{axis}_deg": _vs(dev[:, e, a]) for a, axis in enumerate(AXES)},
            **lid[s]}
        for e, s in enumerate(SIDES)
    }
    d = dev[:, 0] - dev[:, 1]  # (K, 2): right minus left
    deviation = {}
    for a, axis in enumerate(AXES):
        deviation[f"{axis}_deg"] = _vs(d[:, a])
        deviation[f"{axis}_pd"] = _vs(_pd(d[:, a]))
    deviation["words"] = deviation_words(*(deviation[f"{axis}_pd"] for axis in AXES))
    out["deviation"] = deviation
    if step.kind in DEVIATION_KINDS and any(deviation[f"{axis}_deg"]["value"] is None for axis in AXES):
        out["status"], out["reason"] = "not measured", _why_no_deviation(readings[0], intended[0], theta[0], c_mm, rho_mm)
    return out


def _why_no_deviation(readings: np.ndarray, intended: np.ndarray, theta: np.ndarray, c_mm: np.ndarray, rho_mm: np.ndarray) -> str:
    """Why a step's nominal deviation lacks a component, in words: each (2 eyes, 2 axes) nominal."""
    if not np.isfinite(intended).all():
        return "the screen has not been reported, so the target's place is unknown"
    reasons = []
    for e, s in enumerate(SIDES):
        for a, axis in enumerate(AXES):
            if not np.isfinite(readings[e, a]):
                reasons.append(f"no {axis} reading of the {SIDE_WORDS[s]} eye (closed or hidden in every frame)")
            elif not np.isfinite(theta[e, a]):
                reasons.append(f"the {SIDE_WORDS[s]} eye's {axis} reading {readings[e, a]:.1f}° is beyond the eye model's reach "
                               f"(offset {c_mm[e, a]:.2f} mm, gain {rho_mm[e, a]:.2f} mm)")
    return "; ".join(reasons)


def _calibration_result(model: dict, residual: np.ndarray, deviating: int | None, calibrated_between: bool) -> dict:
    eyes = {}
    for e, s in enumerate(SIDES):
        eyes[s] = {"offset_source": model["offset_source"][e], "gain_source": dict(zip(AXES, model["gain_source"][e])),
                   # per axis: the fitted gain is an eye's (True), it failed (False), or none was fitted (None)
                   "valid": {axis: (None if model["gain_source"][e][a] == "generic" else model["gain_failure"][e][a] is None)
                             for a, axis in enumerate(AXES)},
                   "gain_failure": dict(zip(AXES, model["gain_failure"][e]))}
        for a, axis in enumerate(AXES):
            eyes[s][f"c_{axis}_mm"] = _vs(model["c"][:, e, a])
            eyes[s][f"rho_{axis}_mm"] = _vs(model["rho"][:, e, a])
            eyes[s][f"kappa_{axis}_deg"] = float(model["kappa"][e, a])
            eyes[s][f"residual_{axis}_deg"] = float(residual[e, a])  # rms, calibrated minus target, deg
    notes = [f"kappa fixed at the population value: {abs(calibration.KAPPA_DEG[0, 0]):g}° nasal horizontally, 0 vertically "
             "(it cannot be told from the offset c with targets within ±20°; c absorbs the patient's own)."]
    if deviating is not None:
        notes.append(f"The {cover.EYE_WORDS[deviating]} eye took up fixation on the cover test: it did not fixate in the "
                     "binocular calibration, so its gain is the fellow eye's.")
    # A failed axis of the deviating eye is its fellow's (whose gain it takes): said once, for the fellow.
    warnings = [f"Calibration failed ({cover.EYE_WORDS[e]} eye, {axis}): {model['gain_failure'][e][a]}."
                for e in range(2) if e != deviating for a, axis in enumerate(AXES) if model["gain_failure"][e][a]]
    if warnings:
        warnings.append("Angles and deviations on the failed axes use the generic eye model and carry its uncertainty "
                        f"(gain {calibration.IRIS_DEPTH_MM:.1f} mm ± {100 * calibration.GENERIC_GAIN_SD:.0f}%); ask the patient "
                        "to follow the dot and repeat the calibration steps.")
    if not calibrated_between:
        missing = [cover.EYE_WORDS[e] for e in range(2) if model["offset_source"][e] == "population"]
        warnings.append("The deviation between the eyes is NOT calibrated: without the cover step for the "
                        f"{' and '.join(missing)} eye (covering the other eye) the difference between the eyes' offsets "
                        "is taken as 0 (generic anatomy) "
                        f"± the population's spread ({calibration.POPULATION_OFFSET_SD_MM[0]:g} mm per eye horizontally, "
                        f"{calibration.POPULATION_OFFSET_SD_MM[1]:g} mm vertically). Do the cover test to measure the deviation.")
    return {"eyes": eyes, "deviating_eye": None if deviating is None else SIDES[deviating],
            "deviation_calibrated": calibrated_between, "notes": notes + warnings, "warnings": warnings}


def _lid_lag(exam: _Exam, run: StepRun, theta_open: np.ndarray) -> dict:
    out = {"status": run.status, "reason": run.reason}
    if run.measured:
        idx = run.frames[exam.frames.face[run.frames]]
        out["eyes"] = {s: lids.lid_lag(exam.frames.time[idx], theta_open[idx, e, 1], exam.frames.column(f"mrd1_{s}_mm")[idx])
                       for e, s in enumerate(SIDES)}
    return out


def _closure(exam: _Exam, run: StepRun) -> dict:
    out = {"status": run.status, "reason": run.reason, "threshold_mm": lids.CLOSED_GAP_MM}
    if run.measured:
        idx = run.frames[exam.frames.face[run.frames]]
        out["eyes"] = {s: lids.closure_gap(exam.frames.column(f"fissure_height_{s}_mm")[idx]) for s in SIDES}
    return out


def _rest(exam: _Exam, run: StepRun, theta: np.ndarray) -> dict:
    out = {"status": run.status, "reason": run.reason}
    if not run.measured:
        return out
    f = exam.frames
    idx = run.all_frames  # blinks need no settling: the whole step
    openness = np.column_stack([f.column("openness_r")[idx], f.column("openness_l")[idx]])
    events = lid_events(f.time[idx], openness)
    duration = run.end_s - run.start_s
    out["blinks"] = sum(e.kind == "blink" for e in events)
    out["blink_rate_per_min"] = blink_rate_per_minute(events, duration)
    out["duration_s"] = duration
    with nan_ok():
        sd = np.nanstd(theta[run.frames], axis=0)
    counts = np.isfinite(theta[run.frames]).sum(axis=0)
    out["fixation_sd_deg"] = {s: {axis: (float(sd[e, a]) if counts[e, a] >= MIN_FRAMES else None) for a, axis in enumerate(AXES)}
                              for e, s in enumerate(SIDES)}
    return out


def _nystagmus(exam: _Exam, run: StepRun) -> dict:
    out = {"status": run.status, "reason": run.reason, "gaze": run.step.gaze}
    if run.measured:
        series = MeasureSeries(exam.face)
        for i in run.frames:
            series.add_values(exam.frames.time[i], exam.rows[i] if exam.frames.face[i] else None)
        out.update({k: nystagmus_verdict(w) for k, w in series.nystagmus().items()})
    return out


def _cover(exam: _Exam, run: StepRun, stats: dict, baselines: dict, calibrated: Calibrated, deviating_seen: list[int]) -> dict:
    step = run.step
    covered = SIDES.index(step.covered)
    out = {"kind": step.kind, "status": run.status, "reason": run.reason, "covered_eye": step.covered}
    if not run.measured:
        return out
    f = exam.frames
    if step.kind == "cover":
        eye = 1 - covered
        face = run.frames[f.face[run.frames]]
        openness = f.relative_openness[face, covered]
        read_open = bool(np.isfinite(openness).any() and np.nanmedian(openness) > cover.OPEN_UNDER_COVER)
        out["covered_eye_read_open"] = read_open
        if read_open:
            out["warning"] = "covered eye read as open: its readings under the cover are not trustworthy"
        baseline = baselines.get(step.name)
        if baseline is None or step.name not in stats:
            out["finding"] = "no binocular baseline at the centre before the cover: refixation not measured"
            return out
        movement = _movement(stats[step.name], baseline, eye, calibrated)
        tropia, out["finding"] = cover.cover_finding(eye, movement)
        out["tropia"] = tropia
    else:
        eye = covered
        t0 = run.start_s
        first = np.flatnonzero((f.time >= t0) & (f.time < t0 + cover.UNCOVER_EDGE_S))
        last = np.flatnonzero((f.time >= t0 + cover.UNCOVER_S - cover.UNCOVER_EDGE_S) & (f.time < t0 + cover.UNCOVER_S))
        movement = _movement(exam.window(last), exam.window(first), eye, calibrated)
        out["finding"] = cover.uncover_finding(eye, movement, bool(deviating_seen))
    out["moving_eye"] = SIDES[eye]
    for a, axis in enumerate(AXES):
        out[f"movement_{axis}_deg"] = _vs(movement[:, a])
    return out


def _traces(exam: _Exam, theta: np.ndarray) -> dict:
    """Every few frames (TRACE_RATE_HZ): time, each eye's calibrated and intended angles (deg)."""
    t = exam.frames.time
    if len(t) < 2:
        return {"time": t.tolist()}
    rate = (len(t) - 1) / max(t[-1] - t[0], 1e-9)
    keep = np.arange(0, len(t), max(1, int(round(rate / TRACE_RATE_HZ))))
    out = {"time": np.round(t[keep], 3).tolist()}
    for e, s in enumerate(SIDES):
        for a, axis in enumerate(AXES):
            out[f"{s}_{axis}_deg"] = np.round(theta[keep, e, a], 2).tolist()
            out[f"intended_{s}_{axis}_deg"] = np.round(exam.intended[keep, e, a], 2).tolist()
    return out


def _findings(results: dict) -> list[str]:
    """The main figures in one sentence each, for the doctor's live panel."""
    out = []
    primary = results["nine_gaze"].get("primary") or {}
    if primary.get("status") == "measured":
        d = primary["deviation"]
        out.append(f"Primary gaze: {d['words']} (horizontal {_pd_text(d['horizontal_pd'])}, vertical {_pd_text(d['vertical_pd'])})"
                   + ("" if results["calibration"]["deviation_calibrated"] else "; not calibrated: do the cover test") + ".")
    elif primary.get("status") == "not measured":
        out.append(f"Primary gaze: deviation not measured ({primary['reason']}).")
    out += [f"{name.replace('_', ' ').capitalize()}: {c['finding']}." for name, c in results["cover"].items() if c.get("finding")]
    out += [f"{name.replace('_', ' ').capitalize()}: {c['warning']}." for name, c in results["cover"].items() if c.get("warning")]
    for name, lag in results["lid_lag"].items():
        lagging = [SIDE_WORDS[s] for s, e in (lag.get("eyes") or {}).items() if e["verdict"] == "lid lag"]
        if lagging:
            out.append(f"Lid lag on {name.replace('_', ' ')}: {' and '.join(lagging)} eye.")
    for closure in results["closure"].values():
        for s, e in (closure.get("eyes") or {}).items():
            if e["verdict"] != "no data":
                out.append(f"Gentle closure, {SIDE_WORDS[s]} eye: {e['verdict']}, gap {e['gap_mm']:.1f} mm.")
    for rest in results["rest"].values():
        if rest.get("blink_rate_per_min") is not None:
            out.append(f"Blink rate at rest: {rest['blink_rate_per_min']:.0f} per minute.")
    for name, n in results["nystagmus"].items():
        found = [f"{k}: {n[k]['verdict']}" for k in ("both", "r", "l") if k in n and n[k]["verdict"] not in ("none", "no data")]
        if found:
            out.append(f"Nystagmus in {name.replace('_', ' ')} ({', '.join(found)}).")
    return out


def _pd_text(vs: dict) -> str:
    """"value ± sd PD", "–" without a value (`_vs` gives None, never NaN)."""
    if vs["value"] is None:
        return "–"
    return f"{vs['value']:.1f} PD" if vs["sd"] is None else f"{vs['value']:.1f} ± {vs['sd']:.1f} PD"
