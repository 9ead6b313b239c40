"""The ocular measures a doctor reads (`dmask_rt.measure`), from the original and from an output.

`fidelity.py` compares what the tracker sees; this compares what `dmask measure` and
the doctor's page report. Each video's fits (one FaceFitter per stream) feed a
MeasureSeries, and per frame where both show a face and the original's eyes are both
open (not inside one of its blinks, winks or closures, where MRD1 and the eye angles
mean little):

    error_m(t) = |m_output(t) - m_original(t)|   for each m in MEASURES

(lengths in iris diameters, angles in degrees). Over the clip: the lid events of both
(`blinks.lid_events` on the fitted openness), their F1 as in `fidelity.event_f1`, the
blink rates, and the nystagmus verdict of the conjugate signal on each.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..measure import LidEvent, MeasureSeries
from ..measure.blinks import closed_eyes
from .fidelity import event_f1, stats

#: Compared per frame: per-eye lid distances (iris diameters) and openness, each eye's
#: angles, and the deviation between the eyes.
MEASURES = (
    "mrd1_r_iris", "mrd1_l_iris", "mrd2_r_iris", "mrd2_l_iris",
    "fissure_height_r_iris", "fissure_height_l_iris", "openness_r", "openness_l",
    "eye_r_horizontal_deg", "eye_l_horizontal_deg", "eye_r_vertical_deg", "eye_l_vertical_deg",
    "deviation_horizontal_deg", "deviation_vertical_deg",
)
#: Headline groups: the mean error over both eyes of each.
GROUPS = {
    "mrd1_iris": ("mrd1_r_iris", "mrd1_l_iris"),
    "mrd2_iris": ("mrd2_r_iris", "mrd2_l_iris"),
    "fissure_height_iris": ("fissure_height_r_iris", "fissure_height_l_iris"),
    "openness": ("openness_r", "openness_l"),
    "eye_angle_deg": ("eye_r_horizontal_deg", "eye_l_horizontal_deg", "eye_r_vertical_deg", "eye_l_vertical_deg"),
    "deviation_horizontal_deg": ("deviation_horizontal_deg",),
    "deviation_vertical_deg": ("deviation_vertical_deg",),
}


@dataclass(frozen=True)
class Reading:
    """One video's measures with its lid events and session summary, worked out once."""

    series: MeasureSeries
    events: list[LidEvent]
    summary: dict


def read(series: MeasureSeries) -> Reading:
    """The lid events and summary of `series`, for comparing it with several others."""
    return Reading(series, series.lid_events(), series.summary())


def compare(original: Reading, output: Reading) -> dict:
    """Measure errors, lid-event agreement, blink rates and nystagmus verdicts (module docstring).

    Per-frame errors are returned under "per_frame" ({measure: (n,) array, NaN where a
    frame does not count}) for pooling.
    """
    if len(original.series) != len(output.series):
        raise ValueError(f"series of {len(original.series)} and {len(output.series)} frames")
    openness = original.series.openness()
    counted = np.isfinite(openness).all(axis=1) & ~closed_eyes(openness).any(axis=1)
    per_frame = {}
    for name in MEASURES:
        error = np.abs(output.series.column(name) - original.series.column(name))
        error[~counted] = np.nan
        per_frame[name] = error
    return {
        "errors": _group_stats(per_frame),
        "lid_events": {
            "events_original": len(original.events),
            "events_output": len(output.events),
            "f1": event_f1(original.events, output.events),
            "blink_rate_original_per_min": original.summary["lid_events"]["blink_rate_per_min"],
            "blink_rate_output_per_min": output.summary["lid_events"]["blink_rate_per_min"],
        },
        "nystagmus": {"original": original.summary["nystagmus"]["both"]["verdict"],
                      "output": output.summary["nystagmus"]["both"]["verdict"]},
        "per_frame": per_frame,
    }


def pooled(results: list[dict]) -> dict:
    """Errors over all clips' counted frames, and event F1 over all their events."""
    if not results:
        return {}
    per_frame = {name: np.concatenate([r["per_frame"][name] for r in results]) for name in MEASURES}
    events = [r["lid_events"] for r in results]
    total = sum(e["events_original"] + e["events_output"] for e in events)
    tp2 = sum((e["f1"] or 0) * (e["events_original"] + e["events_output"]) for e in events)
    return {
        "errors": _group_stats(per_frame),
        "lid_events": {"events_original": sum(e["events_original"] for e in events),
                       "events_output": sum(e["events_output"] for e in events),
                       "f1": tp2 / total if total else None},
        "nystagmus_agreement": sum(r["nystagmus"]["original"] == r["nystagmus"]["output"] for r in results) / len(results),
    }


def _group_stats(per_frame: dict[str, np.ndarray]) -> dict:
    """`fidelity.stats` of each measure and of each GROUPS entry (its measures' errors pooled)."""
    out = {name: stats(err) for name, err in per_frame.items()}
    out |= {f"group_{g}": stats(np.concatenate([per_frame[m] for m in members])) for g, members in GROUPS.items()}
    return out
