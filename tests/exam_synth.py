"""Synthetic guided exams from a physical model, for tests/test_exam.py.

A head 50 cm from the camera (slightly turned, swaying by a millimetre) watches the
protocol's targets at 30 fps. Each eye's true visual axis points at the target (the
fixating eye; or, for a patient who does not follow the targets, at the camera whatever
the target does) or at it plus a deviation (`deviation(step, t, u)` -> (2 eyes, 2 axes)
degrees); the logged reading is what the avatar would show for that axis on an eye with
offset c, rotation radius rho and kappa (`exam/calibration.py`, equation (1)), plus
per-frame noise. Lids: MRD1 4 mm and MRD2 5 mm unless a scenario says otherwise.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from dmask_rt.exam.geometry import Screen, target_point
from dmask_rt.exam.protocol import STEPS, Step, protocol_json
from dmask_rt.measure.alignment import fixation_angles
from dmask_rt.measure.frame import MEASURE_NAMES
from dmask_rt.model.eyeball import IRIS_DEPTH_MM
from dmask_rt.model.generic_face import N_EXPRESSION, GenericFace
from dmask_rt.model.params import head_rotation, param_names

FPS = 30.0
GAP_S = 0.3  # between steps: the live side's transition
SCREEN = {"width_px": 1280, "height_px": 800, "mm_per_px": 0.2646, "mm_per_px_source": "card",
          "camera_x_mm": 0.0, "camera_y_mm": 8.0, "camera_source": "confirmed"}
PARAM_NAMES = param_names(N_EXPRESSION) + MEASURE_NAMES
IRIS_MM = 11.7


def no_deviation(step: Step, t: float, u: float) -> np.ndarray:
    return np.zeros((2, 2))


def esotropia(step: Step, t: float, u: float) -> np.ndarray:
    """The right eye turned in 10 deg in primary, growing to 15 on left gaze; the left eye fixates.

    Covering the left eye makes the right eye take up fixation (the left eye then turns
    in under the cover), until the left eye is uncovered and takes fixation back 0.5 s later.
    """
    amount = 10.0 + 5.0 * np.clip((0.5 - u) / (0.5 - 0.08), 0.0, 1.0)
    dev = np.zeros((2, 2))
    if (step.name == "cover_left" and t > 0.4) or (step.name == "uncover_left" and t < 0.5):
        dev[1, 0] = -amount  # left eye in (nasal is - for the left eye), right eye fixating
    else:
        dev[0, 0] = amount   # right eye in (nasal is + for the right eye)
    return dev


@dataclass
class Patient:
    """Each eye's anatomy [r, l] per axis [h, v] and the deviation; lid scenario switches."""

    c_mm: np.ndarray = field(default_factory=lambda: np.zeros((2, 2)))
    rho_mm: np.ndarray = field(default_factory=lambda: np.full((2, 2), 11.0))
    kappa_deg: np.ndarray = field(default_factory=lambda: np.array([[5.0, 0.0], [-5.0, 0.0]]))
    deviation: Callable[[Step, float, float], np.ndarray] = no_deviation
    noise_deg: float = 0.6
    lid_lag_r_mm: float = 0.0        # MRD1 of the right eye rising by this over pursuit_down's sweep
    closure_gap_mm: tuple[float, float] = (0.2, 0.2)
    rest_blinks: int = 0
    covered_eye_open: bool = False   # the tracker does not see the hand
    down_gaze_openness: float = 1.0  # the lids lowered with the gaze on the bottom targets
    face_lost_in: tuple[str, ...] = ()
    stares_at_camera: bool = False   # the eyes look at the camera, not at the targets


def reading(theta_deg: np.ndarray, c: np.ndarray, rho: np.ndarray, kappa: np.ndarray) -> np.ndarray:
    """The avatar's angle for a visual axis theta: rho_g sin(theta_m) = c + rho sin(theta - kappa)."""
    return np.degrees(np.arcsin((c + rho * np.sin(np.radians(theta_deg - kappa))) / IRIS_DEPTH_MM))


def schedule(names: list[str] | None = None) -> list[dict]:
    """The record's step runs, back to back with GAP_S between them (all "done")."""
    out, t = [], 0.5
    for i, step in enumerate(STEPS):
        if names is None or step.name in names:
            out.append({"index": i, "name": step.name, "start_s": round(t, 3), "end_s": round(t + step.duration_s, 3),
                        "status": "done"})
        t += step.duration_s + GAP_S
    return out


def exam(patient: Patient, runs: list[dict] | None = None, seed: int = 1, end_s: float | None = None) -> tuple[dict, list[dict]]:
    """(record, rows) of a whole exam (or of `runs` only, rows up to `end_s`)."""
    rng = np.random.default_rng(seed)
    face = GenericFace.load()
    screen = Screen.from_record(SCREEN)
    runs = schedule() if runs is None else runs
    by_name = {s.name: s for s in STEPS}
    end_s = end_s if end_s is not None else max(r["end_s"] for r in runs) + 0.5
    times = np.arange(0.0, end_s, 1.0 / FPS)
    blink_times = set()
    rest = next((r for r in runs if r["name"] == "rest"), None)
    if rest and patient.rest_blinks:
        blink_times = {round(t, 3) for t in np.linspace(rest["start_s"] + 1.5, rest["end_s"] - 1.5, patient.rest_blinks)}
    rows = []
    current, u, v = None, 0.5, 0.5
    for i, t in enumerate(times):
        run = next((r for r in runs if r["start_s"] <= t <= r["end_s"]), None)
        step = by_name[run["name"]] if run else None
        ts = t - run["start_s"] if run else 0.0
        if step is not None:
            current = step
            u, v = step.target(ts)
        row = {"frame": i, "time": round(float(t), 6), "face_found": True}
        if step is not None and step.name in patient.face_lost_in and rng.random() < 0.8:
            rows.append(row | {"face_found": False} | {n: None for n in PARAM_NAMES})
            continue
        yaw, pitch, roll = 3.0 + 0.3 * np.sin(t), -4.0 + 0.3 * np.cos(0.7 * t), 1.0
        trans = np.array([5.0 + np.sin(0.5 * t), -10.0, 500.0 + np.cos(0.3 * t)])
        point = target_point(screen, u, v)
        looked_at = np.zeros(3) if patient.stares_at_camera else point  # the camera is the frame's origin
        aimed = fixation_angles(face, head_rotation(yaw, pitch, roll), trans, looked_at)
        dev = patient.deviation(current, ts, u) if current is not None else np.zeros((2, 2))
        theta_m = reading(aimed + dev, patient.c_mm, patient.rho_mm, patient.kappa_deg)
        theta_m = theta_m + patient.noise_deg * rng.standard_normal((2, 2))
        values = {n: 0.0 for n in PARAM_NAMES} | {
            "head_yaw_deg": yaw, "head_pitch_deg": pitch, "head_roll_deg": roll,
            "head_x_mm": trans[0], "head_y_mm": trans[1], "head_z_mm": trans[2],
        }
        for e, s in enumerate("rl"):
            mrd1, mrd2, openness = 4.0, 5.0, (patient.down_gaze_openness if v > 0.7 else 1.0)
            if step is not None and step.name == "pursuit_down" and s == "r" and ts > 1.0:
                mrd1 += patient.lid_lag_r_mm * (ts - 1.0) / 5.0
            if step is not None and step.kind == "closure" and ts > 0.5:
                mrd1, mrd2 = -1.0, patient.closure_gap_mm[e] + 1.0  # the pupil under the upper lid
                openness = patient.closure_gap_mm[e] / 9.0
            if any(abs(t - b) < 0.06 for b in blink_times):
                mrd1, mrd2, openness = -4.5, 4.8, 0.03
            if step is not None and step.covered == s and step.kind == "cover" and ts > 0.4 and not patient.covered_eye_open:
                openness = 0.1
            mrd1 += 0.15 * rng.standard_normal()
            values |= {
                f"eye_{s}_horizontal_deg": theta_m[e, 0], f"eye_{s}_vertical_deg": theta_m[e, 1],
                f"mrd1_{s}_mm": mrd1, f"mrd2_{s}_mm": mrd2, f"mrd1_{s}_iris": mrd1 / IRIS_MM, f"mrd2_{s}_iris": mrd2 / IRIS_MM,
                f"fissure_height_{s}_mm": mrd1 + mrd2, f"fissure_height_{s}_iris": (mrd1 + mrd2) / IRIS_MM,
                f"openness_{s}": openness + 0.01 * rng.standard_normal(),
            }
        rows.append(row | {n: float(values[n]) for n in PARAM_NAMES})
    record = {"format": "dmask-exam", "version": 1, "started": "2026-12-01T20:30:00Z", "protocol": protocol_json(),
              "screen": dict(SCREEN), "steps": runs, "params_file": "exam.params.jsonl"}
    return record, rows
