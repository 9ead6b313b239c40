"""Cover-uncover: which eye moves to take up fixation, and which way, in words.

Cover (cover_X: eye X under the hand, the other eye fixating the centre target alone).
The uncovered eye's refixation movement is its angle relative to the target during the
cover (after settling) minus the same under binocular viewing of the centre target just
before (the 1 s before the cover step when the target was then at the centre, else the
rest step, else the primary gaze steps). Taking each angle relative to its intended
angle removes what head movement changes. An eye that moves more than MOVEMENT_DEG
(2 degrees, about twice the per-step noise of a webcam reading) AND more than
MOVEMENT_SDS (2) sd of the movement was deviated under binocular viewing: a manifest
deviation (tropia) of that eye, opposite to its movement (an eye that moves out was
turned in: esotropia). Under the threshold, no manifest deviation of that eye is seen.

Uncover (uncover_X): the previously covered eye's movement over the first UNCOVER_S
(1.5 s) after the hand goes: its angle relative to the target over the last 0.3 s of
that span minus over its first 0.3 s. A movement means the eye had drifted under the
cover and recovers: a phoria when the cover of the other eye showed no movement, the
fixation switching back in a tropia otherwise.

A movement is not measured when the eye has no reading in a window (hidden throughout, or
too few frames): its finding says so rather than "did not move".

Whether the hand was seen: under cover the covered eye should read closed or hidden. If
its median relative openness (opening over its usual opening) stays above
OPEN_UNDER_COVER (0.7) with the face found, the tracker did not see the hand and the
covered eye's readings are not trustworthy.
"""
from __future__ import annotations

import numpy as np

MOVEMENT_DEG = 2.0
MOVEMENT_SDS = 2.0
UNCOVER_S = 1.5
UNCOVER_EDGE_S = 0.3
OPEN_UNDER_COVER = 0.7
EYE_WORDS = {0: "right", 1: "left"}
#: The sign of a nasal (inward) horizontal rotation per eye: the right eye's nose side is the image right (+).
NASAL_SIGN = {0: 1.0, 1: -1.0}


def moved(movement: np.ndarray) -> np.ndarray:
    """(2,) per axis: did the eye move? movement (K, 2) draws, draw 0 nominal (module docstring);
    False where it was not measured (NaN)."""
    finite = np.isfinite(movement[1:])
    sd = np.array([np.std(movement[1:, a][finite[:, a]]) if finite[:, a].sum() > 1 else np.inf
                   for a in range(movement.shape[1])])
    return (np.abs(movement[0]) > MOVEMENT_DEG) & (np.abs(movement[0]) > MOVEMENT_SDS * sd)


def measured(movement: np.ndarray) -> bool:
    """Was the movement (K, 2) draws measured on some axis (its nominal value not NaN)?"""
    return bool(np.isfinite(movement[0]).any())


def direction(eye: int, axis: int, value: float) -> str:
    """"in"/"out" (horizontal, by the eye's nasal side) or "up"/"down" (vertical) for a movement."""
    if axis == 0:
        return "in" if value * NASAL_SIGN[eye] > 0 else "out"
    return "up" if value > 0 else "down"


_OPPOSITE_DEVIATION = {"in": "exotropia (turned out)", "out": "esotropia (turned in)",
                       "up": "hypotropia (turned down)", "down": "hypertropia (turned up)"}


def cover_finding(eye: int, movement: np.ndarray) -> tuple[bool | None, str]:
    """(tropia? None when not measured, the sentence) for the uncovered `eye`'s refixation movement (K, 2) draws."""
    name = EYE_WORDS[eye]
    if not measured(movement):
        return None, f"the {name} eye's refixation was not measured (no reading of it before or under the cover)"
    flags = moved(movement)
    if not flags.any():
        return False, f"the {name} eye did not move to take up fixation (under {MOVEMENT_DEG:g}°): no manifest deviation of it"
    parts = [f"{direction(eye, a, movement[0, a])} {abs(movement[0, a]):.1f}°" for a in range(2) if flags[a]]
    kinds = [_OPPOSITE_DEVIATION[direction(eye, a, movement[0, a])] for a in range(2) if flags[a]]
    return True, (f"the {name} eye moved {' and '.join(parts)} to take up fixation: "
                  f"it was deviated under binocular viewing, {' and '.join(kinds)}")


def uncover_finding(eye: int, movement: np.ndarray, tropia_seen: bool) -> str:
    """The sentence for the previously covered `eye`'s movement (K, 2) draws after uncovering."""
    name = EYE_WORDS[eye]
    if not measured(movement):
        return f"the {name} eye's movement on uncovering was not measured (no reading of it at the start or the end of {UNCOVER_S:g} s)"
    flags = moved(movement)
    if not flags.any():
        return f"the {name} eye did not move on uncovering (under {MOVEMENT_DEG:g}°)"
    parts = [f"{direction(eye, a, movement[0, a])} {abs(movement[0, a]):.1f}°" for a in range(2) if flags[a]]
    what = "fixation switching back (tropia)" if tropia_seen else "recovery of a latent deviation (phoria)"
    return f"the {name} eye moved {' and '.join(parts)} on uncovering: {what}"
