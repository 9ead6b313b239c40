"""The guided examination's steps: where the fixation target is, for how long, and what the
patient is asked to do.

A target's place is given in fractions of the patient's page (u from its left edge to its
right edge as the patient sees it, v from its top to its bottom); the page is shown full
screen during the exam, and `geometry.py` turns a place into millimetres in the camera's
frame. Each step's first `settle_s` seconds are left out of its figures: the eyes need
that long to find a new target (a saccade's latency is about 0.2 s, a hand covering an eye
takes about a second), and the step's start reaches the relay a few frames late.

Timing follows clinical practice: each diagnostic gaze position held for about 3 s, 20 s at
rest for blinks and fixation stability, 5 s in each side position for gaze-evoked
nystagmus, a 3 s gentle closure, and each cover held long enough for the fellow eye to
take up fixation.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

#: How far from the page's edges the outer targets sit (fraction of the page): a 4 cm
#: target must fit whole, and a phone's rounded corners must not hide it.
EDGE = 0.08
CENTRE = (0.5, 0.5)


@dataclass(frozen=True)
class Step:
    """One step of the exam.

    kind: "calibration", "gaze" (diagnostic position), "pursuit", "closure", "rest",
    "hold" (side position), "cover" (one eye covered by the patient's hand) or "uncover".
    path: (t, u, v) keyframes, the target moving linearly between them (one keyframe: it
    stands still). covered: the eye under the hand ("r" or "l"), for cover steps.
    """

    name: str
    kind: str
    label: str
    instruction: str
    duration_s: float
    settle_s: float
    path: tuple[tuple[float, float, float], ...]
    covered: str | None = None
    gaze: str | None = None  # the diagnostic position ("primary", "up", "up_right", ...)

    def target(self, t: float) -> tuple[float, float]:
        """(u, v) of the target `t` seconds into the step (held at the ends)."""
        path = self.path
        if t <= path[0][0]:
            return path[0][1], path[0][2]
        for (t0, u0, v0), (t1, u1, v1) in zip(path, path[1:]):
            if t <= t1:
                a = (t - t0) / (t1 - t0) if t1 > t0 else 1.0
                return u0 + a * (u1 - u0), v0 + a * (v1 - v0)
        return path[-1][1], path[-1][2]

    def to_json(self) -> dict:
        return {k: (list(map(list, v)) if k == "path" else v) for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict) -> "Step":
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        fields["path"] = tuple(tuple(float(x) for x in p) for p in data["path"])
        return cls(**fields)


#: The nine diagnostic positions: name -> (u, v) on the page. The patient's right is the
#: right of the page as the patient sees it.
GAZE_POSITIONS: dict[str, tuple[float, float]] = {
    "primary": CENTRE,
    "up": (0.5, EDGE), "down": (0.5, 1 - EDGE),
    "right": (1 - EDGE, 0.5), "left": (EDGE, 0.5),
    "up_right": (1 - EDGE, EDGE), "up_left": (EDGE, EDGE),
    "down_right": (1 - EDGE, 1 - EDGE), "down_left": (EDGE, 1 - EDGE),
}

_WORDS = {
    "primary": "in the middle", "up": "at the top", "down": "at the bottom",
    "right": "on your right", "left": "on your left",
    "up_right": "at the top right", "up_left": "at the top left",
    "down_right": "at the bottom right", "down_left": "at the bottom left",
}


def _fixate(name: str, kind: str, label: str, instruction: str, place: tuple[float, float],
            duration_s: float, settle_s: float = 1.0, **extra: str) -> Step:
    return Step(name, kind, label, instruction, duration_s, settle_s, ((0.0, *place),), **extra)


def _steps() -> tuple[Step, ...]:
    keep_head = "Keep your head still and follow the dot with your eyes only."
    steps: list[Step] = []
    for where in ("primary", "right", "left", "up", "down"):
        steps.append(_fixate(
            f"calibration_{where}", "calibration", f"Calibration {where}",
            f"Look at the dot {_WORDS[where]}. {keep_head}",
            GAZE_POSITIONS[where], 3.0, gaze=where))
    for where in ("primary", "up", "down", "right", "left", "up_right", "up_left", "down_right", "down_left"):
        steps.append(_fixate(
            f"gaze_{where}", "gaze", f"Gaze {where.replace('_', ' ')}", f"Look at the dot {_WORDS[where]}.",
            GAZE_POSITIONS[where], 3.0, gaze=where))
    top, bottom = (0.5, EDGE), (0.5, 1 - EDGE)
    steps.append(Step("pursuit_down", "pursuit", "Pursuit down",
                      "Follow the dot slowly down with your eyes.", 6.0, 1.0,
                      ((0.0, *top), (1.0, *top), (6.0, *bottom))))
    steps.append(Step("pursuit_up", "pursuit", "Pursuit up",
                      "Follow the dot slowly up with your eyes.", 6.0, 1.0,
                      ((0.0, *bottom), (1.0, *bottom), (6.0, *top))))
    steps.append(_fixate("closure", "closure", "Gentle closure",
                         "Close your eyes gently, as if asleep, until you hear or see 'open'.",
                         CENTRE, 4.0, settle_s=1.0))
    steps.append(_fixate("rest", "rest", "Rest in the middle",
                         "Look at the dot in the middle and blink as you normally do.", CENTRE, 20.0))
    steps.append(_fixate("hold_right", "hold", "Hold right", "Keep looking at the dot on your right.",
                         GAZE_POSITIONS["right"], 5.0, gaze="right"))
    steps.append(_fixate("hold_left", "hold", "Hold left", "Keep looking at the dot on your left.",
                         GAZE_POSITIONS["left"], 5.0, gaze="left"))
    for eye, word in (("l", "left"), ("r", "right")):
        steps.append(_fixate(f"cover_{word}", "cover", f"Cover {word} eye",
                             f"Cover your {word} eye with your hand and keep looking at the dot with the other.",
                             CENTRE, 4.0, settle_s=1.5, covered=eye, gaze="primary"))
        steps.append(_fixate(f"uncover_{word}", "uncover", f"Uncover {word} eye",
                             "Take your hand away and look at the dot with both eyes.",
                             CENTRE, 3.0, settle_s=0.0, covered=eye, gaze="primary"))
    return tuple(steps)


STEPS: tuple[Step, ...] = _steps()
STEP_INDEX: dict[str, int] = {s.name: i for i, s in enumerate(STEPS)}


def protocol_json() -> list[dict]:
    """The steps as the patient's page receives them."""
    return [{"index": i, **s.to_json()} for i, s in enumerate(STEPS)]


def total_duration_s() -> float:
    return sum(s.duration_s for s in STEPS)
