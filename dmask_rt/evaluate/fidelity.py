"""Clinical fidelity: what a doctor (or a tracker) reads off the eyes, original vs output.

Both videos go through the same FaceTracker; every measure below is computed the same
way on both and compared frame by frame, on frames where both have a face. Lengths are
image pixels unless said otherwise. Per eye e (0 = subject's right):

    eye-region points  the 16 lid-margin points (corners, 7 lower, 7 upper) and the 5
                       iris points: 21 per eye, 42 in all
    landmark error     E = mean_i |p_i(output) - p_i(original)|, reported as
                       100 E / image width (%) and E / IOD, IOD = |iris_r - iris_l| of
                       the original
    iris diameter      D = (|b_right - b_left| + |b_top - b_bottom|) / 2 from the 4 iris
                       boundary points
    lid distances      in the eye's own frame (u along corner-to-corner, v perpendicular,
                       pointing down in the image), with pupil P = iris centre and U(u),
                       L(u) the upper/lower margins interpolated along their polylines:
                       MRD1 = (v_P - v_U(u_P)) / D,  MRD2 = (v_L(u_P) - v_P) / D,
                       fissure = MRD1 + MRD2, all in iris diameters
    gaze               the eye angles (theta, phi) of a FaceFitter fit; the error is the
                       angle between the two gaze vectors, acos(d_orig . d_out), on
                       frames where the original eye is open (blink states below)
    head pose          the fit's rotation; the error is the angle of R_orig^T R_out,
                       acos((tr(R_orig^T R_out) - 1) / 2)
    openness           fitter.eye_openness: mean lid gap / corner-to-corner width

Blinks: the events of `measure/blinks.py` (blinks, winks, closures; each eye's
openness relative to its own usual opening, with hysteresis), found on each video's
tracker openness. Events agree when they overlap in time and involve the same eyes (a
wink read as a blink is a disagreement), matched one to one in time order:

    F1 = 2 TP / (events_original + events_output)
    Cohen's kappa on the per-frame closed state of each eye, both eyes pooled:
    (p_o - p_e) / (1 - p_e), with p_o the observed agreement and p_e = sum_c
    p_orig(c) p_out(c) the agreement by chance.

A frame in which the output shows no face is an open eye there: a doctor sees no blink.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..fit.fitter import eye_openness
from ..measure.blinks import LidEvent, closed_eyes, lid_events
from ..model.eyeball import gaze_direction
from ..model.mesh_indices import EYE_CORNERS, LOWER_LID, UPPER_LID, eye_rings
from ..track.landmarks import IRIS_START

#: Eye-region point indices, per eye: the 16-point lid ring, then the 5 iris points.
EYE_REGION = np.array(
    [np.concatenate([eye_rings()[e], np.arange(IRIS_START[e], IRIS_START[e] + 5)]) for e in range(2)]
)
LID_NAMES = ("mrd1", "mrd2", "fissure")


def iris_diameter(points: np.ndarray) -> np.ndarray:
    """(2,) D per eye: mean of the horizontal and vertical iris boundary distances."""
    out = np.empty(2)
    for e, s in enumerate(IRIS_START):
        right, top, left, bottom = points[s + 1 : s + 5]
        out[e] = (np.linalg.norm(right - left) + np.linalg.norm(top - bottom)) / 2
    return out


def _margin_at(u_margin: np.ndarray, v_margin: np.ndarray, u: float) -> float:
    order = np.argsort(u_margin)  # np.interp needs increasing u; margins run either way
    return float(np.interp(u, u_margin[order], v_margin[order]))


def lid_distances(points: np.ndarray) -> np.ndarray:
    """(2, 3) MRD1, MRD2, fissure height per eye, in iris diameters (module docstring)."""
    diameters = iris_diameter(points)
    out = np.empty((2, 3))
    for e in range(2):
        lateral, medial = points[EYE_CORNERS[e, 0]], points[EYE_CORNERS[e, 1]]
        axis = (medial - lateral) / max(float(np.linalg.norm(medial - lateral)), 1e-6)
        normal = np.array([-axis[1], axis[0]])
        if normal[1] < 0:  # v points down the image whichever way the corners run
            normal = -normal

        def uv(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            d = np.atleast_2d(p) - lateral
            return d @ axis, d @ normal

        corners = np.array([EYE_CORNERS[e, 0], EYE_CORNERS[e, 1]])
        upper_u, upper_v = uv(points[np.concatenate([corners[:1], UPPER_LID[e], corners[1:]])])
        lower_u, lower_v = uv(points[np.concatenate([corners[:1], LOWER_LID[e], corners[1:]])])
        pu, pv = uv(points[IRIS_START[e]])
        mrd1 = (pv[0] - _margin_at(upper_u, upper_v, pu[0])) / diameters[e]
        mrd2 = (_margin_at(lower_u, lower_v, pu[0]) - pv[0]) / diameters[e]
        out[e] = mrd1, mrd2, mrd1 + mrd2
    return out


@dataclass
class Series:
    """Per-frame measures of one video (NaN where it has no face); n frames."""

    times: np.ndarray        # (n,) seconds
    found: np.ndarray        # (n,) bool
    eye_points: np.ndarray   # (n, 2, 21, 2) eye-region points, px
    iod: np.ndarray          # (n,) px between the iris centres
    openness: np.ndarray     # (n, 2)
    lids: np.ndarray         # (n, 2, 3) MRD1, MRD2, fissure in iris diameters
    eye_angles: np.ndarray   # (n, 2, 2) fitted [eye][horizontal, vertical], degrees
    rotation: np.ndarray     # (n, 3, 3) fitted head rotation
    head_angles: np.ndarray  # (n, 3) fitted yaw, pitch, roll, degrees

    @classmethod
    def empty(cls, times: np.ndarray) -> "Series":
        nan, n = np.nan, len(times)
        return cls(np.asarray(times, float), np.zeros(n, bool), np.full((n, 2, 21, 2), nan), np.full(n, nan), np.full((n, 2), nan),
                   np.full((n, 2, 3), nan), np.full((n, 2, 2), nan), np.full((n, 3, 3), nan), np.full((n, 3), nan))

    @classmethod
    def build(cls, times: np.ndarray, landmarks: list[np.ndarray | None],
              fits: list[tuple[np.ndarray, np.ndarray, tuple[float, float, float]] | None]) -> "Series":
        """Measures from per-frame times (s), (478, 2) tracker points and fits (rotation, eye
        angles in radians, (yaw, pitch, roll) in degrees); None = none."""
        series = cls.empty(times)
        for i, (points, fit) in enumerate(zip(landmarks, fits)):
            if points is None:
                continue
            series.found[i] = True
            series.eye_points[i] = points[EYE_REGION]
            series.iod[i] = np.linalg.norm(points[IRIS_START[0]] - points[IRIS_START[1]])
            series.openness[i] = eye_openness(points)
            series.lids[i] = lid_distances(points)
            if fit is not None:  # a diverged fit leaves the fitted measures NaN
                series.rotation[i], eyes, series.head_angles[i] = fit
                series.eye_angles[i] = np.degrees(eyes)
        return series


def gaze_vectors(eye_angles_deg: np.ndarray) -> np.ndarray:
    """(..., 3) gaze directions d(theta, phi) for (..., 2) angles in degrees."""
    flat = np.radians(eye_angles_deg.reshape(-1, 2))
    return np.array([gaze_direction(t, p) for t, p in flat]).reshape(*eye_angles_deg.shape[:-1], 3)


def rotation_angle_deg(r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
    """Angle of R1^T R2 in degrees, for (n, 3, 3) stacks."""
    cos = (np.einsum("nij,nij->n", r1, r2) - 1) / 2  # tr(R1^T R2) = sum of elementwise products
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def event_f1(reference: list[LidEvent], output: list[LidEvent]) -> float | None:
    """F1 = 2 TP / (|reference| + |output|): events of the same eyes that overlap in time,
    matched one to one in time order; None if neither has any."""
    if not reference and not output:
        return None
    used = [False] * len(output)
    tp = 0
    for a in reference:
        for j, b in enumerate(output):
            if not used[j] and a.eyes == b.eyes and b.start_s <= a.end_s and a.start_s <= b.end_s:
                used[j] = True
                tp += 1
                break
    return 2 * tp / (len(reference) + len(output))


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> float | None:
    """(p_o - p_e) / (1 - p_e) for two boolean label sequences; None when p_e = 1 (one class only)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if len(a) == 0:
        return None
    p_o = float(np.mean(a == b))
    p_e = float(a.mean() * b.mean() + (1 - a.mean()) * (1 - b.mean()))
    return None if p_e >= 1.0 else (p_o - p_e) / (1 - p_e)


def stats(values: np.ndarray) -> dict[str, float | int | None]:
    """Count, mean, median and 95th percentile of the finite values (None when there are none)."""
    v = np.asarray(values, float).ravel()
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return {"n": 0, "mean": None, "median": None, "p95": None}
    return {"n": int(len(v)), "mean": float(v.mean()), "median": float(np.median(v)), "p95": float(np.percentile(v, 95))}


def compare(original: Series, output: Series, width: int) -> dict:
    """Every fidelity number of `output` against `original` (same clip, same frames).

    Per-frame error arrays are returned under "per_frame" (NaN where a frame does not
    count) for plots; everything else is plain numbers.
    """
    if len(original.found) != len(output.found):
        raise ValueError(f"series of {len(original.found)} and {len(output.found)} frames")
    ref = original.found
    both = ref & output.found
    n_ref = int(ref.sum())
    out: dict = {"frames": len(ref), "frames_with_face": n_ref,
                 "tracked_share": float(both.sum() / n_ref) if n_ref else None}
    err_px = np.linalg.norm(output.eye_points - original.eye_points, axis=-1).mean(axis=(1, 2))
    err_px[~both] = np.nan
    pct = 100 * err_px / width
    iod = err_px / original.iod
    gaze_dot = np.sum(gaze_vectors(original.eye_angles) * gaze_vectors(output.eye_angles), axis=-1)
    gaze = np.degrees(np.arccos(np.clip(gaze_dot, -1.0, 1.0)))  # (n, 2)
    gaze[~both] = np.nan
    # Under a closed lid the iris is not seen and the fit holds the last angle: no gaze to compare.
    gaze[closed_eyes(np.where(ref[:, None], original.openness, np.nan))] = np.nan
    lids = np.abs(output.lids - original.lids)  # (n, 2, 3)
    lids[~both] = np.nan
    pose = rotation_angle_deg(original.rotation, output.rotation)
    pose[~both] = np.nan
    axes = np.abs(output.head_angles - original.head_angles)
    axes[~both] = np.nan
    out["eye_region_error_pct_width"] = stats(pct)
    out["eye_region_error_iod"] = stats(iod)
    out["gaze_error_deg"] = {side: stats(gaze[:, e]) for e, side in enumerate(("right", "left"))}
    out["lid_error_iris"] = {name: stats(lids[:, :, k]) for k, name in enumerate(LID_NAMES)}
    out["lid_error_iris_per_eye"] = {
        side: {name: stats(lids[:, e, k]) for k, name in enumerate(LID_NAMES)} for e, side in enumerate(("right", "left"))
    }
    out["head_pose_error_deg"] = stats(pose)
    out["head_axis_error_deg"] = {name: stats(axes[:, k]) for k, name in enumerate(("yaw", "pitch", "roll"))}
    out["blinks"] = blink_agreement(original, output)
    out["per_frame"] = {"eye_region_error_pct_width": pct, "eye_region_error_iod": iod, "gaze_error_deg": gaze,
                        "lid_error_iris": lids, "head_pose_error_deg": pose}
    return out


def blink_agreement(original: Series, output: Series) -> dict:
    """Lid events and per-frame closed states of both eyes: F1 and Cohen's kappa.

    Frames where the original has no face do not count; where only the output lacks a
    face, its eyes count as open.
    """
    ref = original.found
    times = original.times[ref]
    openness_ref = original.openness[ref]
    openness_out = np.where(output.found[ref, None], output.openness[ref], np.nan)
    events_ref, events_out = lid_events(times, openness_ref), lid_events(times, openness_out)
    states_ref, states_out = closed_eyes(openness_ref).ravel(), closed_eyes(openness_out).ravel()
    return {
        "events_original": len(events_ref),
        "events_output": len(events_out),
        "f1": event_f1(events_ref, events_out),
        "kappa": cohen_kappa(states_ref, states_out),
        "closed_share_original": float(np.mean(states_ref)) if ref.any() else None,
    }


def pooled(results: list[dict]) -> dict:
    """The headline numbers over several clips, frame-weighted (their per-frame arrays pooled)."""
    if not results:
        return {}
    pf = [r["per_frame"] for r in results]
    n_ref = sum(r["frames_with_face"] for r in results)
    tracked = sum((r["tracked_share"] or 0) * r["frames_with_face"] for r in results)
    blinks = [r["blinks"] for r in results]
    ev = sum(b["events_original"] + b["events_output"] for b in blinks)
    tp2 = sum((b["f1"] or 0) * (b["events_original"] + b["events_output"]) for b in blinks)
    kappas = [(b["kappa"], r["frames_with_face"]) for b, r in zip(blinks, results) if b["kappa"] is not None]
    gaze = np.concatenate([p["gaze_error_deg"] for p in pf])
    lids = np.concatenate([p["lid_error_iris"] for p in pf])
    return {
        "frames_with_face": n_ref,
        "tracked_share": tracked / n_ref if n_ref else None,
        "eye_region_error_pct_width": stats(np.concatenate([p["eye_region_error_pct_width"] for p in pf])),
        "eye_region_error_iod": stats(np.concatenate([p["eye_region_error_iod"] for p in pf])),
        "gaze_error_deg": {side: stats(gaze[:, e]) for e, side in enumerate(("right", "left"))},
        "lid_error_iris": {name: stats(lids[:, :, k]) for k, name in enumerate(LID_NAMES)},
        "head_pose_error_deg": stats(np.concatenate([p["head_pose_error_deg"] for p in pf])),
        "blinks": {
            "events_original": sum(b["events_original"] for b in blinks),
            "events_output": sum(b["events_output"] for b in blinks),
            "f1": tp2 / ev if ev else None,
            # kappa is not additive: the frame-weighted mean of the clips' kappas
            "kappa": sum(k * w for k, w in kappas) / sum(w for _, w in kappas) if kappas else None,
        },
    }
