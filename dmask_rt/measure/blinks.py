"""Blinks, winks and longer eye closures from each eye's openness over time.

Input: per-frame openness of each eye (`eyelids.eyelid_measures`: fissure height over
the template's open height) with the frames' timestamps; NaN frames (no face) are
dropped. People's eyes differ in how open they are at rest, so each eye's openness is
first divided by its own usual open value, the 75th percentile over the series (the
median would not do: closures and downward gaze can fill half a clip):

    o_e(t) = openness_e(t) / P75(openness_e)

An eye is closed from the first to the last frame with o_e < `close_below` (0.5) of
each stretch in which it never rises above `reopen_above` (0.6): the hysteresis keeps
noise around one level from splitting one closure in two. Per frame the joint state is
then none / right / left / both closed, and runs of one state become events:

    both eyes closed, up to `long_closure_s` (0.5 s)   -> "blink"
    both eyes closed, longer                           -> "closure" (eyes shut slowly, held shut)
    one eye closed while the other is clearly open     -> "wink" of that eye

Two rules keep winks honest. A one-eye run is a wink only if the other eye's median
o over it is above `wink_other_above` (0.7); otherwise both eyes are closing unevenly
and it counts as both. And in a normal blink the eyes close and open a frame or two
apart, so a one-eye run spanning less than `merge_s` (0.12 s, up to 4 frames at 30 fps)
that touches a both-eye run is part of that event. Each event keeps both eyes' lowest
o, so an uneven blink (one lid closing less: facial palsy, lagophthalmos) stays visible.

Timing: an event starts and ends where the openness of the eyes involved (the lower
one) crosses `close_below`, linearly interpolated between frames: its duration is the
time spent below half the usual opening, the half-closure duration common in blink
studies. Blink rate = blinks (not winks or closures) per minute of the series.

Trust, and where the numbers come from (six development clips, p01-p04, p06 and p08;
tests/test_measure.py checks four):
the fitted lids do not close fully on every shut eye. Measured o: squeezed winks
0.26-0.45, blinks down to 0.0-0.45; eyes open but looking down 0.5-0.7; the open eye
during a wink mostly 0.66-0.86. One eye of a blink can also be under-read: on the
low-resolution clip (face 160 px), both eyes visibly shut, the right eye stays at
0.61-0.64 in 3 of 10 blinks. Hence 0.7 for a wink's other eye: it calls those blinks
blinks, at the price of a wink whose other eye is narrowed (p02, frame 388, left eye
shut and right narrowed: 0.44 and 0.60), which is reported as an uneven blink, its
`min_openness` showing which eye closed. Both readings come from the tracker, not the
fit: the same relative openness taken from the tracked lid landmarks themselves
(`fit.fitter.eye_openness`) is 0.60-0.63 for p08's right eye in those blinks and 0.46
(left) / 0.66 (right) at p02's frame 388, and the fit follows them within a few
hundredths (it reads fully shut lids lower than the landmarks, whose facing lid points
never quite meet). With these inputs no threshold on the other eye tells that wink
from those blinks. The thresholds were set on these
clips, so they are tuned, not validated on independent footage. At 25-30 fps a blink
spans 3-6 frames, so durations are good to about one frame (33-40 ms).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OPEN_PERCENTILE = 75.0
CLOSE_BELOW = 0.5
REOPEN_ABOVE = 0.6
WINK_OTHER_ABOVE = 0.7
RIGHT, LEFT, BOTH = 1, 2, 3  # joint per-frame state: which eyes are closed


@dataclass(frozen=True)
class LidEvent:
    kind: str      # "blink", "closure" or "wink"
    eyes: str      # "both", "r" or "l"
    start_s: float
    end_s: float
    min_openness: tuple[float, float]  # (right, left) lowest relative openness o during the event

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def relative_openness(openness: np.ndarray) -> np.ndarray:
    """(N, 2) o = openness / P75(openness) per eye, NaN frames kept as NaN."""
    usual = [np.percentile(col[np.isfinite(col)], OPEN_PERCENTILE) if np.isfinite(col).any() else np.nan for col in openness.T]
    return openness / np.array(usual)


def closed_frames(o: np.ndarray, close_below: float, reopen_above: float) -> np.ndarray:
    """(N,) bool: closed from the first to the last frame below `close_below` of each
    stretch in which the eye never rises above `reopen_above` (hysteresis)."""
    closed = np.zeros(len(o), bool)
    first = last = None
    for i, v in enumerate(o):
        if v < close_below:
            first = i if first is None else first
            last = i
        elif v > reopen_above and first is not None:
            closed[first : last + 1] = True
            first = last = None
    if first is not None:
        closed[first : last + 1] = True
    return closed


def closed_eyes(openness: np.ndarray, close_below: float = CLOSE_BELOW, reopen_above: float = REOPEN_ABOVE) -> np.ndarray:
    """(N, 2) bool per eye: `closed_frames` of the relative openness; NaN rows are not closed."""
    o = relative_openness(np.asarray(openness, float))
    closed = np.column_stack([closed_frames(o[:, e], close_below, reopen_above) for e in range(2)])
    return closed & np.isfinite(o)


def lid_events(
    times: np.ndarray,
    openness: np.ndarray,
    close_below: float = CLOSE_BELOW,
    reopen_above: float = REOPEN_ABOVE,
    long_closure_s: float = 0.5,
    merge_s: float = 0.12,
    wink_other_above: float = WINK_OTHER_ABOVE,
) -> list[LidEvent]:
    """Blinks, closures and winks in `openness` (N, 2) [right, left] at `times` (N,) seconds."""
    times = np.asarray(times, float)
    openness = np.asarray(openness, float)
    keep = np.isfinite(openness).all(axis=1)
    t, o = times[keep], relative_openness(openness[keep])
    if len(t) == 0:
        return []
    closed = closed_eyes(openness[keep], close_below, reopen_above)
    state = closed[:, 0] * RIGHT + closed[:, 1] * LEFT
    # A one-eye closure is a wink only while the other eye is clearly open (its median
    # over the run above `wink_other_above`); otherwise both eyes are closing unevenly (a
    # blink the fit under-reads in one eye, lids lowered unevenly while looking down).
    for i0, i1, s in runs(state):
        other = 1 if s == RIGHT else 0
        if s in (RIGHT, LEFT) and np.median(o[i0 : i1 + 1, other]) <= wink_other_above:
            state[i0 : i1 + 1] = BOTH
    # Within one blink the eyes close and open a frame or two apart: a short one-eye run
    # touching a both-eye run belongs to it.
    for i0, i1, s in runs(state.copy()):
        touches_both = (i0 > 0 and state[i0 - 1] == BOTH) or (i1 + 1 < len(state) and state[i1 + 1] == BOTH)
        if s in (RIGHT, LEFT) and t[i1] - t[i0] < merge_s and touches_both:
            state[i0 : i1 + 1] = BOTH
    events = []
    for i0, i1, s in runs(state):
        if s == 0:
            continue
        eyes = {RIGHT: [0], LEFT: [1], BOTH: [0, 1]}[s]
        signal = o[:, eyes].min(axis=1)
        start = _crossing(t, signal, i0 - 1, i0, close_below)
        end = _crossing(t, signal, i1 + 1, i1, close_below)
        if s == BOTH:
            kind, who = ("closure" if end - start > long_closure_s else "blink"), "both"
        else:
            kind, who = "wink", "r" if s == RIGHT else "l"
        lowest = o[i0 : i1 + 1].min(axis=0)
        events.append(LidEvent(kind, who, start, end, (float(lowest[0]), float(lowest[1]))))
    return events


def blink_rate_per_minute(events: list[LidEvent], duration_s: float) -> float:
    """Blinks (both eyes, short) per minute over a series lasting `duration_s`."""
    blinks = sum(e.kind == "blink" for e in events)
    return 60.0 * blinks / duration_s if duration_s > 0 else float("nan")


def runs(state: np.ndarray) -> list[tuple[int, int, int]]:
    """Maximal runs of equal state as (first index, last index, state); none in an empty series."""
    if len(state) == 0:
        return []
    edges = np.flatnonzero(np.diff(state)) + 1
    starts = np.concatenate([[0], edges])
    ends = np.concatenate([edges - 1, [len(state) - 1]])
    return [(int(a), int(b), int(state[a])) for a, b in zip(starts, ends)]


def _crossing(t: np.ndarray, signal: np.ndarray, outside: int, inside: int, level: float) -> float:
    """Time where `signal` crosses `level` between frame `outside` (open side) and `inside` (closed).

    Linear interpolation when the outside frame is above the level; the midpoint
    between the frames when it is not (the event borders another event); the inside
    frame's own time at the ends of the series.
    """
    if not 0 <= outside < len(t):
        return float(t[inside])
    a, b = signal[outside], signal[inside]
    frac = (a - level) / (a - b) if a > level > b else 0.5
    return float(t[outside] + frac * (t[inside] - t[outside]))
