"""Clinical fidelity in a doctor's units: each eye's readings, original vs output, per frame.

Every stream is a sequence of eye outlines (`track/eye_outline.EyeOutline`, right and
left eye) read by `read_eye`: the original's from the tracker, the mask's from the
geometry it draws (or its pixels, `avatar_pixels.py`), a baseline's from the tracker.
Per frame where the original shows a face (an output without a face there reads as
open eyes and counts against it in the closure events; elsewhere it does not count):

    MRD1, MRD2        |out - orig| in iris diameters, per eye, where the original's eye
                      is not shut
    lid middles       |out - orig| of each lid's height above (upper) or below (lower)
                      the corner line at the fissure's middle, in iris diameters, where
                      the original's eye is not shut: the lid's shape beside MRD's place
    place             |out - orig| of the iris centre's place between the corners
                      (horizontal, 0 lateral .. 1 medial) and below the corner line
                      (vertical), in fissure widths, where the original eye is open at
                      least PLACE_MIN_OPENING (less iris than that cannot be placed, and
                      the mask then keeps the last well-seen rotation)
    scleral show      share of eye-frames, original not shut, where out and orig agree on
                      sclera above the iris (MRD1 > 1/2) and, apart, below (MRD2 > 1/2)
    closure events    per eye the runs of shut frames (`read_eye` shut: widest gap under
                      SHUT_OPENING of the width); a run of frames with any eye shut is one
                      event of the eyes shut in it ("both" when both were, at any frame);
                      F1 as `fidelity.event_f1` (same eyes, overlapping in time, one to one)
    deviation         the angle between the eyes, horizontal and vertical, in prism
                      dioptres, |out - orig|, where both of the original's eyes are open at
                      least PLACE_MIN_OPENING; reported as the mean and as the share of
                      frames within DEVIATION_TOLERANCE_PD

Read so, the mask "as drawn" meets the lid, place, scleral-show and closure figures by
construction wherever the eye transfer (`fit/eye_transfer.py`) can solve: the mask's
tracker and the original's are the same tracker on the same frames, and the transfer
draws exactly the readings it was given. What this protocol adds is that the frame's
pixels show what is drawn (`avatar_pixels.py`, the "as its pixels show" row), and the
figures the transfer does not hold by construction (the deviation below); the tracker's
own accuracy on real eyes is measured apart, on hand-labelled frames.

The deviation reading uses nothing but an outline, so it reads the original and the
avatar alike. Each eye's rotation is taken from its iris centre's offset from the
middle of the fissure (horizontal) and from the corner line (vertical), with the iris
itself as the ruler: the iris centre sits rho = sqrt(R^2 - r_i^2) = 10.47 mm from the
eyeball's centre (R = 12 mm, r_i = 5.85 mm, an 11.7 mm iris), so with r the limbus radius
in pixels

    sin(theta_h) = (s_p - (s_lat + s_med) / 2) / (rho / r_i * r)     toward the image right
    sin(theta_v) = -h_p / (rho / r_i * r)                           up
    deviation_h = theta_h(right eye) - theta_h(left eye)   (> 0: the eyes turn toward each
                                                            other, eso)
    deviation_v = theta_v(right eye) - theta_v(left eye)   (> 0: right eye higher)
    PD = 100 tan(deviation)

Its limits: it assumes each eyeball's centre projects onto the middle of its fissure
and its corner line (true of neither eye exactly: a patient's resting offset, the angle
kappa and an asymmetric canthus all enter as a constant bias, which cancels in the
error only where both videos share it); it ignores the head's yaw and pitch, which
foreshorten the offsets by their cosine and not the iris radius; it takes every iris as
11.7 mm; and it is only as good as the iris radius. It reads a relative deviation
between two views of the same eyes, not a cover-test measurement. Note also that the
mask transfers the place in fissure widths: on a face whose fissure spans another
number of iris diameters than the avatar's, the same place is another angle, so this
reading shows a scaled deviation on the avatar (by the ratio of the two fissures).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..fit.eye_transfer import PLACE_MIN_OPENING
from ..measure.blinks import LidEvent, runs
from ..model.eyeball import IRIS_DEPTH_MM, IRIS_RADIUS_MM
from ..track.eye_outline import EyeOutline, EyeReadings, eye_frame, read_eye
from .fidelity import event_f1, stats

DEVIATION_TOLERANCE_PD = 2.0
#: Per-eye values of a frame, in this order.
VALUES = ("mrd1", "mrd2", "place_h", "place_v", "opening", "upper_mid", "lower_mid")
SIDES = ("right", "left")


def eye_angles(outline: EyeOutline) -> tuple[float, float]:
    """(horizontal, vertical) rotation of one eye in degrees from its outline (module docstring)."""
    origin, a, n, _ = eye_frame(outline.corners)
    rel = np.asarray(outline.iris_centre, float) - origin
    s_p, h_p = float(rel @ a), float(rel @ n)
    s_mid = float(np.mean((np.asarray(outline.corners, float) - origin) @ a))
    ruler = IRIS_DEPTH_MM / IRIS_RADIUS_MM * float(outline.iris_radius)
    clip = lambda v: max(-1.0, min(1.0, v))  # noqa: E731
    return math.degrees(math.asin(clip((s_p - s_mid) / ruler))), math.degrees(math.asin(clip(-h_p / ruler)))


def prism_dioptres(deg: np.ndarray) -> np.ndarray:
    return 100.0 * np.tan(np.radians(deg))


@dataclass
class EyeTrack:
    """Per-frame readings of both eyes of one stream (NaN / False where there is no face)."""

    times: np.ndarray    # (n,) s
    found: np.ndarray    # (n,) bool
    values: np.ndarray   # (n, 2, len(VALUES)) VALUES per eye (right, left)
    shut: np.ndarray     # (n, 2) bool
    angles: np.ndarray   # (n, 2, 2) eye_angles per eye, degrees

    @classmethod
    def build(cls, times: np.ndarray,
              frames: list[tuple[tuple[EyeReadings, EyeReadings], tuple[EyeOutline, EyeOutline]] | None]) -> "EyeTrack":
        """From per-frame (readings, outlines) of (right, left); None = no face. The angles
        come from the outlines, the rest from the readings."""
        n = len(times)
        track = cls(np.asarray(times, float), np.zeros(n, bool), np.full((n, 2, len(VALUES)), np.nan), np.zeros((n, 2), bool),
                    np.full((n, 2, 2), np.nan))
        for i, frame in enumerate(frames):
            if frame is None:
                continue
            readings, outlines = frame
            track.found[i] = True
            for e in range(2):
                r = readings[e]
                track.values[i, e] = [getattr(r, name) for name in VALUES]
                track.shut[i, e] = r.shut
                track.angles[i, e] = eye_angles(outlines[e])
        return track

    @classmethod
    def from_outlines(cls, times: np.ndarray, outlines: list[tuple[EyeOutline, EyeOutline] | None]) -> "EyeTrack":
        return cls.build(times, [None if o is None else ((read_eye(o[0]), read_eye(o[1])), o) for o in outlines])


def closure_events(times: np.ndarray, shut: np.ndarray) -> list[LidEvent]:
    """Runs of frames with any eye shut, as LidEvents of the eyes shut in them (module docstring)."""
    events: list[LidEvent] = []
    for i, j, state in runs(shut.any(axis=1).astype(int)):
        if state:
            right, left = shut[i : j + 1, 0].any(), shut[i : j + 1, 1].any()
            eyes = "both" if right and left else ("r" if right else "l")
            events.append(LidEvent("closure", eyes, float(times[i]), float(times[j]), (0.0, 0.0)))
    return events


def compare(original: EyeTrack, output: EyeTrack) -> dict:
    """Every clinical number of `output` against `original` (same clip, same frames).

    Per-frame arrays go under "per_frame" (NaN where a frame does not count) for pooling.
    """
    if len(original.found) != len(output.found):
        raise ValueError(f"tracks of {len(original.found)} and {len(output.found)} frames")
    ref = original.found
    both = ref & output.found
    not_shut = both[:, None] & ~original.shut                       # (n, 2)
    placeable = both[:, None] & (original.values[:, :, 4] >= PLACE_MIN_OPENING)
    err = np.abs(output.values - original.values)                   # (n, 2, len(VALUES))
    mrd = np.where(not_shut[:, :, None], err[:, :, :2], np.nan)
    mid = np.where(not_shut[:, :, None], err[:, :, 5:7], np.nan)
    place = np.where(placeable[:, :, None], err[:, :, 2:4], np.nan)
    show = {}
    for k, name in enumerate(("above", "below")):
        o, m = original.values[:, :, k] > 0.5, output.values[:, :, k] > 0.5
        show[name] = np.where(not_shut, (o == m).astype(float), np.nan)
    deviation = np.full((len(ref), 2), np.nan)
    both_open = placeable.all(axis=1)
    for k in range(2):  # horizontal, vertical
        dev_o = prism_dioptres(original.angles[:, 0, k] - original.angles[:, 1, k])
        dev_m = prism_dioptres(output.angles[:, 0, k] - output.angles[:, 1, k])
        deviation[:, k] = np.where(both_open, np.abs(dev_m - dev_o), np.nan)
    # The closure events over the frames where the original has a face; an output
    # without a face there shows open eyes.
    times = original.times[ref]
    shut_out = np.where(output.found[ref, None], output.shut[ref], False)
    events_o, events_m = closure_events(times, original.shut[ref]), closure_events(times, shut_out)
    per_frame = {"mrd1": mrd[:, :, 0], "mrd2": mrd[:, :, 1], "place_h": place[:, :, 0], "place_v": place[:, :, 1],
                 "upper_mid": mid[:, :, 0], "lower_mid": mid[:, :, 1],
                 "sclera_above": show["above"], "sclera_below": show["below"],
                 "deviation_h_pd": deviation[:, 0], "deviation_v_pd": deviation[:, 1]}
    out = _summary(per_frame)
    out["closures"] = {"events_original": len(events_o), "events_output": len(events_m),
                       "f1": event_f1(events_o, events_m)}
    out["frames_with_face"] = int(ref.sum())
    out["read_share"] = float(both.sum() / ref.sum()) if ref.any() else None
    out["per_frame"] = per_frame
    return out


def _summary(per_frame: dict[str, np.ndarray]) -> dict:
    out: dict = {}
    for name in ("mrd1", "mrd2", "upper_mid", "lower_mid", "place_h", "place_v", "deviation_h_pd", "deviation_v_pd"):
        out[name] = stats(per_frame[name])
    for name in ("sclera_above", "sclera_below"):
        v = per_frame[name][np.isfinite(per_frame[name])]
        out[name] = {"n": int(len(v)), "agreement": float(v.mean()) if len(v) else None}
    for name in ("deviation_h_pd", "deviation_v_pd"):
        v = per_frame[name][np.isfinite(per_frame[name])]
        out[name]["within_tolerance"] = float(np.mean(v <= DEVIATION_TOLERANCE_PD)) if len(v) else None
    return out


def pooled(results: list[dict]) -> dict:
    """Every clip's counted frames together; closure F1 over all their events."""
    if not results:
        return {}
    per_frame = {k: np.concatenate([r["per_frame"][k] for r in results]) for k in results[0]["per_frame"]}
    out = _summary(per_frame)
    closures = [r["closures"] for r in results]
    total = sum(c["events_original"] + c["events_output"] for c in closures)
    tp2 = sum((c["f1"] or 0) * (c["events_original"] + c["events_output"]) for c in closures)
    out["closures"] = {"events_original": sum(c["events_original"] for c in closures),
                       "events_output": sum(c["events_output"] for c in closures),
                       "f1": tp2 / total if total else None}
    n_ref = sum(r["frames_with_face"] for r in results)
    out["frames_with_face"] = n_ref
    out["read_share"] = sum((r["read_share"] or 0) * r["frames_with_face"] for r in results) / n_ref if n_ref else None
    return out
