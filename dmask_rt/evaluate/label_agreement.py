"""Two independent labellings of the same eyes: how far they agree, and their consensus.

A label is read to a fraction of a pixel where an edge is sharp, but a lid over a dark
iris under dark lashes, or a 10 px iris in a 256 px frame, leaves room for judgement:
two careful labellers, both following eye_labels.py's conventions, place such a margin
a pixel or more apart, which is 0.05-0.1 of an iris diameter on the small eyes. So the
label set carries a second labelling, made blind (from the same tracker proposal,
without seeing the first), and

- `agreement`: the second labelling read as if it were a method against the first (the
  same errors `eye_labels.evaluate` gives a tracker: MRD1, MRD2, lid, iris centre,
  open/shut), which is the floor below which a method's error cannot be measured;
- `consensus`: per eye labelled in both, the mean of the two outlines (corners, each
  lid sampled at the same fractions of the fissure, the limbus circle). An eye the two
  call differently shut or open, or one of them without an iris, is left out of the
  consensus (it is counted, and stays in the first labelling's figures).
"""
from __future__ import annotations

import copy

from ..track.eye_outline import EyeOutline
from . import eye_labels as el

#: Where the consensus lids are sampled, as fractions of the fissure.
FRACTIONS = tuple((k + 1) / 10 for k in range(9))


def mean_label(first: el.EyeLabel, second: el.EyeLabel) -> el.EyeLabel | None:
    """The consensus of two labels of one eye (module docstring); None when they disagree
    on shut or on whether an iris shows. The class is the first labelling's."""
    if first.shut != second.shut or (first.iris_centre is None) != (second.iris_centre is None):
        return None
    # both labels' lids at the same fractions of their own fissures (from the image-left
    # corner: the same anatomical side in both labels of one eye)
    a, b = el.resample(first.to_outline(), FRACTIONS), el.resample(second.to_outline(), FRACTIONS)
    corners = 0.5 * (first.corners + second.corners)
    upper, lower = 0.5 * (a.upper + b.upper), 0.5 * (a.lower + b.lower)
    if first.iris_centre is None or second.iris_centre is None:
        centre, radius = None, None
    else:
        centre = 0.5 * (first.iris_centre + second.iris_centre)
        radius = 0.5 * (first.iris_radius + second.iris_radius)
    return el.EyeLabel(corners, upper, lower, centre, radius, first.shut, first.cls)


def _both(first: dict, second: dict) -> dict[tuple[str, int, str], tuple[el.EyeLabel, el.EyeLabel]]:
    theirs = {(e["clip"], e["frame"], eye): lab for e, eye, lab in el.labelled_eyes(second)}
    return {(e["clip"], e["frame"], eye): (lab, theirs[(e["clip"], e["frame"], eye)])
            for e, eye, lab in el.labelled_eyes(first) if (e["clip"], e["frame"], eye) in theirs}


def _with_labels(doc: dict, labels: dict[tuple[str, int, str], el.EyeLabel]) -> dict:
    """A copy of `doc` whose eyes carry `labels` (and no label where `labels` has none)."""
    out = copy.deepcopy(doc)
    for entry in out["frames"]:
        for eye in el.EYES:
            lab = labels.get((entry["clip"], entry["frame"], eye))
            entry["eyes"][eye]["label"] = None if lab is None else lab.to_dict()
    return out


def consensus(first: dict, second: dict) -> tuple[dict, int]:
    """(the consensus label document, eyes left out because the labellings disagree on shut
    or iris); it holds only eyes labelled in both."""
    means = {key: mean_label(a, b) for key, (a, b) in _both(first, second).items()}
    kept = {key: lab for key, lab in means.items() if lab is not None}
    return _with_labels(first, kept), len(means) - len(kept)


def agreement(first: dict, second: dict) -> dict[str, el.Summary]:
    """The second labelling's errors against the first, per group (`eye_labels.evaluate`),
    over the eyes labelled in both."""
    pairs = _both(first, second)
    doc = _with_labels(first, {key: a for key, (a, _) in pairs.items()})
    outlines: dict[tuple[str, int, str], EyeOutline | None] = {key: b.to_outline() for key, (_, b) in pairs.items()}
    return el.evaluate(doc, outlines)
