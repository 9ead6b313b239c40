"""A session's measurements over time: per-frame values with timestamps, and their summary.

`MeasureSeries.add(time, params)` measures one fitted frame (`frame.py`'s eyelid and
alignment measures; None = no face, kept as a gap). `summary()` then gives:

- per-eye lid measures and between-eye alignment as medians (and interquartile ranges)
  over the frames with both eyes open (frames inside a blink, wink or closure, where
  MRD1 and the eye angles mean little, are left out);
- the lid events of `blinks.py` and the blink rate;
- nystagmus (`nystagmus.py`) in sliding windows of the right eye, the left eye and
  their mean (the conjugate movement, with sqrt(2) less noise), with frames where the
  eye is closed or less than 70% open treated as gaps (the fit holds a covered eye's
  angle, and a partly covered iris is tracked off-centre), the head pose and its
  velocity regressed out of every window (the fitted eye angles follow head motion),
  and the mean's windows counted only when both eyes beat together. A signal's verdict is a
  direction only when the oscillation is sustained: detected in at least two
  consecutive (half-overlapping) windows whose frequencies agree within 25%, i.e. over
  at least 1.5 windows (3 s at the default 2 s); "none" when windows were analysed
  without such a finding; "no data" when no window could be (too short, or the eyes
  never open for a whole window).

Units as in the per-frame measures: mm, iris diameters, degrees, prism dioptres, Hz.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping

import numpy as np

from ..model.generic_face import GenericFace
from ..model.params import EYE_ANGLE_NAMES, POSE_NAMES, AvatarParams
from .blinks import LidEvent, blink_rate_per_minute, closed_eyes, lid_events, relative_openness
from .eyelids import EYE_SIDES, IRIS_DIAMETER_MM
from .frame import LENGTHS, MEASURE_NAMES, all_measures
from .nystagmus import NystagmusWindow, nystagmus_windows

#: Relative openness below which an eye's angles are left out of the nystagmus analysis:
#: a partly covered iris biases the tracked centre (on the development clips, blinks
#: every second or so otherwise read as a 2-3 Hz "vertical nystagmus").
IRIS_OPEN_ABOVE = 0.7
#: Frequency agreement between consecutive detected windows for a sustained finding.
SUSTAINED_FREQUENCY_RATIO = 1.25

#: What is kept per frame: the log's measures, the eye angles and the head pose (which the
#: nystagmus test regresses out of the eye angles).
COLUMNS = MEASURE_NAMES + EYE_ANGLE_NAMES + POSE_NAMES


class MeasureSeries:
    """Per-frame ocular measures of one session, in time order."""

    def __init__(self, face: GenericFace, iris_diameter_mm: float = IRIS_DIAMETER_MM) -> None:
        self.face = face
        self.iris_diameter_mm = iris_diameter_mm
        self.times: list[float] = []
        # One float row per frame (NaN without a face), not dicts: an hour at 30 fps is about 50 MB.
        self._rows: list[np.ndarray] = []
        self._table: np.ndarray | None = None  # the rows stacked, rebuilt after an add
        self._index = {name: k for k, name in enumerate(COLUMNS)}

    def __len__(self) -> int:
        return len(self.times)

    def add(self, time_s: float, params: AvatarParams | None) -> dict[str, float] | None:
        """Measure one frame at `time_s` seconds (None: no face) and keep it; returns its measures."""
        row = None
        if params is not None:
            pose = params.to_dict()
            row = all_measures(self.face, params, self.iris_diameter_mm) | {name: pose[name] for name in POSE_NAMES}
        self.add_values(time_s, row)
        return row

    def add_values(self, time_s: float, values: Mapping[str, float] | None) -> None:
        """Keep one frame's already computed values (e.g. `FrameResult.params`; None: no face).

        `values` must hold every COLUMNS name; other keys are ignored.
        """
        row = np.full(len(COLUMNS), math.nan) if values is None else np.array([values[name] for name in COLUMNS])
        self.times.append(float(time_s))
        self._rows.append(row)
        self._table = None

    def column(self, name: str) -> np.ndarray:
        """(N,) one measure (a COLUMNS name) over all frames, NaN where there was no face."""
        if self._table is None:
            self._table = np.array(self._rows).reshape(len(self._rows), len(COLUMNS))
        return self._table[:, self._index[name]].copy()

    def openness(self) -> np.ndarray:
        """(N, 2) [right, left] openness."""
        return np.column_stack([self.column(f"openness_{s}") for s in EYE_SIDES])

    def lid_events(self, **thresholds: float) -> list[LidEvent]:
        """Blinks, winks and closures (`blinks.lid_events`)."""
        return lid_events(np.array(self.times), self.openness(), **thresholds)

    def eye_angles(self) -> dict[str, np.ndarray]:
        """(N, 2) [horizontal, vertical] degrees for "r", "l" and "both" (their mean), NaN where
        there is no face or the eye is closed or under IRIS_OPEN_ABOVE open ("both": either eye)."""
        openness = self.openness()
        with np.errstate(invalid="ignore"):  # NaN rows (no face) are NaN anyway
            hidden = closed_eyes(openness) | (relative_openness(openness) < IRIS_OPEN_ABOVE)
        out = {}
        for e, s in enumerate(EYE_SIDES):
            a = np.column_stack([self.column(f"eye_{s}_horizontal_deg"), self.column(f"eye_{s}_vertical_deg")])
            a[hidden[:, e]] = math.nan
            out[s] = a
        out["both"] = (out["r"] + out["l"]) / 2
        return out

    def head_pose(self) -> np.ndarray:
        """(N, 6) yaw, pitch, roll (deg) and x, y, z (mm) of the head, NaN without a face."""
        return np.column_stack([self.column(name) for name in POSE_NAMES])

    def nystagmus(self, window_s: float = 2.0, **criteria: float) -> dict[str, list[NystagmusWindow]]:
        """`nystagmus.nystagmus_windows` of each eye and of their mean, with the head pose
        regressed out; the mean's windows must be conjugate (both eyes)."""
        times = np.array(self.times)
        angles = self.eye_angles()
        head = self.head_pose()
        out = {k: nystagmus_windows(times, angles[k], window_s, head=head, **criteria) for k in EYE_SIDES}
        out["both"] = nystagmus_windows(times, angles["both"], window_s, head=head, eyes=(angles["r"], angles["l"]), **criteria)
        return out

    def summary(self, window_s: float = 2.0) -> dict:
        """The session's report as plain JSON values (None where nothing could be measured).

        Keys: frames, frames_with_face, frames_eyes_open, duration_s, iris_diameter_mm;
        eyes.{r,l}.{measure}: {median, iqr} over frames with both eyes open; alignment.{measure}:
        the same; lid_events: counts, blink_rate_per_min and the events; nystagmus.{r,l,both}:
        `nystagmus_verdict`.
        """
        times = np.array(self.times)
        face = np.isfinite(self.column("eye_r_horizontal_deg"))
        duration = float(times[face][-1] - times[face][0]) if face.sum() > 1 else 0.0
        events = self.lid_events()
        open_frames = face & ~closed_eyes(self.openness()).any(axis=1)

        def stats(name: str) -> dict[str, float]:
            v = self.column(name)[open_frames]
            v = v[np.isfinite(v)]
            if len(v) == 0:
                return {"median": math.nan, "iqr": math.nan}
            q1, q2, q3 = np.percentile(v, [25, 50, 75])
            return {"median": float(q2), "iqr": float(q3 - q1)}

        eyes = {
            s: {f"{m}_{unit}": stats(f"{m}_{s}_{unit}") for m in LENGTHS for unit in ("mm", "iris")}
            | {"openness": stats(f"openness_{s}")}
            for s in EYE_SIDES
        }
        alignment = {
            name: stats(name)
            for name in (
                "difference_horizontal_deg", "difference_horizontal_pd",
                "difference_vertical_deg", "difference_vertical_pd", "vergence_deg",
                "deviation_horizontal_deg", "deviation_horizontal_pd",
                "deviation_vertical_deg", "deviation_vertical_pd",
                "deviation_r_horizontal_deg", "deviation_l_horizontal_deg",
                "deviation_r_vertical_deg", "deviation_l_vertical_deg",
                "gaze_horizontal_deg", "gaze_vertical_deg", "mrd1_asymmetry_mm",
            )
        }
        return _plain({
            "frames": len(self),
            "frames_with_face": int(face.sum()),
            "frames_eyes_open": int(open_frames.sum()),
            "duration_s": duration,
            "iris_diameter_mm": self.iris_diameter_mm,
            "eyes": eyes,
            "alignment": alignment,
            "lid_events": {
                "blinks": sum(e.kind == "blink" for e in events),
                "blink_rate_per_min": blink_rate_per_minute(events, duration),
                "closures": sum(e.kind == "closure" for e in events),
                "winks_r": sum(e.kind == "wink" and e.eyes == "r" for e in events),
                "winks_l": sum(e.kind == "wink" and e.eyes == "l" for e in events),
                "events": [
                    {"kind": e.kind, "eyes": e.eyes, "start_s": e.start_s, "end_s": e.end_s,
                     "duration_s": e.duration_s, "min_openness_r": e.min_openness[0], "min_openness_l": e.min_openness[1]}
                    for e in events
                ],
            },
            "nystagmus": {k: nystagmus_verdict(w) for k, w in self.nystagmus(window_s).items()},
        })


def nystagmus_verdict(windows: list[NystagmusWindow]) -> dict:
    """A signal's verdict from its windows: the longest sustained run of detections, else "none".

    Sustained = consecutive windows all detected, each frequency within
    SUSTAINED_FREQUENCY_RATIO of the previous; at least two windows. The run's
    frequency and amplitudes are the medians over its windows, its direction the most
    common one.
    """
    best: list[NystagmusWindow] = []
    run: list[NystagmusWindow] = []
    for w in windows:
        # Windows step by half their length; one skipped (a gap) leaves no overlap.
        consecutive = bool(run) and w.start_s < run[-1].end_s - 0.25 * (w.end_s - w.start_s)
        agrees = bool(run) and (
            max(w.frequency_hz, run[-1].frequency_hz) <= SUSTAINED_FREQUENCY_RATIO * min(w.frequency_hz, run[-1].frequency_hz)
        )
        if w.detected and consecutive and agrees:
            run.append(w)
        else:
            run = [w] if w.detected else []
        if len(run) > len(best):
            best = list(run)
    verdict: dict = {"windows": len(windows), "windows_detected": sum(w.detected for w in windows)}
    if not windows:
        return verdict | {"verdict": "no data"}  # no 2 s stretch with the eyes open: nothing was tested
    if len(best) < 2:
        return verdict | {"verdict": "none"}
    return verdict | {
        "verdict": Counter(w.direction for w in best).most_common(1)[0][0],
        "start_s": best[0].start_s,
        "end_s": best[-1].end_s,
        "frequency_hz": float(np.median([w.frequency_hz for w in best])),
        "amplitude_horizontal_deg": float(np.median([w.amplitude_deg[0] for w in best])),
        "amplitude_vertical_deg": float(np.median([w.amplitude_deg[1] for w in best])),
    }


def _plain(value):
    """`value` with numpy scalars as Python numbers and non-finite floats as None (valid JSON)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value
