"""The exam's param rows as columns, and which rows belong to which step.

A step's figures come from the rows of its latest "done" run (a step repeated after a
pause or on the doctor's request counts by its last complete run), inside
[start_s + settle_s, end_s]: the eyes need settle_s to find a new target. A step is
"measured" when that window holds at least MIN_FRAMES frames with a face and the face was
found in at least MIN_FACE_FRACTION of its frames; otherwise it is "not measured" with
the reason (face lost, stopped, interrupted) or "not reached" (no run yet, or running now:
the live side analyses while the next step runs).

Angles are left out of the figures on frames where the eye is closed (`blinks.closed_eyes`:
blinks, closure, a hand over it) or under IRIS_OPEN_ABOVE of its median opening over the
surrounding LOCAL_FRAMES frames (about a second: a lid on its way down or up, whose
partly covered iris is tracked off-centre, as in `measure/series.py`). The local median,
rather than the eye's usual opening, keeps the eyes of a patient looking down, whose lids
follow the gaze down to 0.5-0.7 of their usual opening. Lid measures keep every frame with
a face and only drop closed eyes.
"""
from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..measure.blinks import closed_eyes, relative_openness
from ..measure.series import IRIS_OPEN_ABOVE
from .protocol import Step

MIN_FRAMES = 10
MIN_FACE_FRACTION = 0.5
LOCAL_FRAMES = 31


class Frames:
    """The param rows as float columns (NaN where None), read once per column."""

    def __init__(self, rows: Sequence[Mapping]) -> None:
        self.rows = rows
        self.time = np.array([r["time"] for r in rows], float)
        self.face = np.array([bool(r.get("face_found")) for r in rows], bool)
        self._columns: dict[str, np.ndarray] = {}
        openness = np.column_stack([self.column("openness_r"), self.column("openness_l")]).reshape(len(rows), 2)
        with np.errstate(invalid="ignore"):  # NaN rows (no face) stay NaN
            self.relative_openness = relative_openness(openness)
            self.closed = closed_eyes(openness)
            self.hidden = self.closed | ~(openness >= IRIS_OPEN_ABOVE * _local_median(openness))

    def __len__(self) -> int:
        return len(self.time)

    def column(self, name: str) -> np.ndarray:
        if name not in self._columns:
            self._columns[name] = np.array([r.get(name) for r in self.rows], float).reshape(len(self.rows))
        return self._columns[name]

    def readings(self, hide: np.ndarray | None = None) -> np.ndarray:
        """(N, 2 eyes, 2 axes) the avatar's eye angles (deg), NaN where `hide` (N, 2) is set."""
        out = np.stack([
            np.column_stack([self.column(f"eye_{s}_horizontal_deg"), self.column(f"eye_{s}_vertical_deg")])
            for s in ("r", "l")], axis=1).reshape(len(self), 2, 2)
        if hide is not None:
            out[hide] = np.nan
        return out


@dataclass(frozen=True)
class StepRun:
    """A protocol step and what became of it."""

    step: Step
    status: str                      # "measured", "not measured" or "not reached"
    reason: str | None = None
    start_s: float | None = None
    end_s: float | None = None
    frames: np.ndarray | None = None  # indices of the rows after settling
    all_frames: np.ndarray | None = None  # indices of the rows over the whole run

    @property
    def measured(self) -> bool:
        return self.status == "measured"

    def to_json(self) -> dict:
        return {"status": self.status, "reason": self.reason, "start_s": self.start_s, "end_s": self.end_s,
                "frames": None if self.frames is None else int(len(self.frames))}


def step_runs(protocol: Sequence[Step], record_steps: Sequence[Mapping], frames: Frames) -> dict[str, StepRun]:
    """Each protocol step's latest done run with its rows and status (module docstring)."""
    latest: dict[str, Mapping] = {}
    for run in record_steps:  # later runs replace earlier ones; a done run is kept over a later failed one
        name = run.get("name")
        if name is None and isinstance(run.get("index"), int) and 0 <= run["index"] < len(protocol):
            name = protocol[run["index"]].name
        if name is None:
            continue
        previous = latest.get(name)
        if run.get("status") == "done" or previous is None or previous.get("status") != "done":
            latest[name] = run
    out = {}
    for step in protocol:
        run = latest.get(step.name)
        if run is None:
            out[step.name] = StepRun(step, "not reached")
            continue
        status = run.get("status")
        if status == "running":  # the step the patient is doing now
            out[step.name] = StepRun(step, "not reached", "in progress", float(run["start_s"]))
            continue
        if status != "done":
            end = None if run.get("end_s") is None else float(run["end_s"])
            out[step.name] = StepRun(step, "not measured", f"step {status or 'not finished'}", float(run["start_s"]), end)
            continue
        start, end = float(run["start_s"]), float(run["end_s"])
        whole = np.flatnonzero((frames.time >= start) & (frames.time <= end))
        window = whole[frames.time[whole] >= start + step.settle_s]
        with_face = int(frames.face[window].sum())
        if with_face < MIN_FRAMES or with_face < MIN_FACE_FRACTION * len(window):
            if not len(window):
                reason = "no frames in the step"
            elif with_face < MIN_FRAMES:
                reason = f"{with_face} frames with a face (of {len(window)}; at least {MIN_FRAMES} needed)"
            else:
                reason = f"face found in only {with_face} of {len(window)} frames"

            out[step.name] = StepRun(step, "not measured", reason, start, end, window, whole)
        else:
            out[step.name] = StepRun(step, "measured", None, start, end, window, whole)
    return out


@contextlib.contextmanager
def nan_ok() -> Iterator[None]:
    """NaN statistics of empty or all-NaN slices give NaN quietly (a step without a face, no screen yet)."""
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _local_median(values: np.ndarray) -> np.ndarray:
    """(N, 2) each column's median over the LOCAL_FRAMES frames centred on each frame, NaN ignored."""
    if len(values) == 0:
        return values.copy()
    half = LOCAL_FRAMES // 2
    padded = np.pad(values, ((half, half), (0, 0)), constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, LOCAL_FRAMES, axis=0)  # (N, 2, LOCAL_FRAMES)
    with nan_ok():  # all-NaN windows (no face) give NaN
        return np.nanmedian(windows, axis=-1)
