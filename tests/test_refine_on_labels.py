"""The eye refinement against hand-labelled real eyes (tests/data/eye_labels.json).

On the clips the refinement was not tuned on (p03 with glasses, p07, p08 at low
resolution, p09), run as the product runs it (each clip from its first frame, a fresh
refiner per clip), it meets issue 11's targets for the labelled set, where today's
tracker alone reads shut eyes open. The whole set, per class, is
`python -m dmask_rt.evaluate.label_tool eval` (README, "Eyes at the extremes").
"""
from __future__ import annotations

import pytest

from dmask_rt.evaluate import eye_labels as el
from dmask_rt.track.eye_refine import EyeRefiner

HELD_OUT = {"p03_glasses_blinks.mp4", "p07_talking.mp4", "p08_low_res_256.mp4", "p09_webcam.mp4"}


@pytest.fixture(scope="module")
def held_out() -> dict:
    doc = el.load()
    labelled = {(e["clip"], e["frame"]) for e, _, _ in el.labelled_eyes(doc)}
    frames = [f for f in doc["frames"] if f["clip"] in HELD_OUT and (f["clip"], f["frame"]) in labelled]
    assert len(frames) >= 30
    return {**doc, "frames": frames}


def test_refined_eyes_meet_the_targets_on_held_out_labels(held_out):
    refined = el.evaluate(held_out, el.collect(held_out, el.refined(el.tracker_method, EyeRefiner)))["all"]
    tracker = el.evaluate(held_out, el.collect(held_out, el.tracker_method))["all"]
    assert refined.missed == 0
    assert refined.shut_acc >= 0.97 > tracker.shut_acc   # the tracker leaves shut eyes open
    assert refined.mrd1[0] <= 0.05 and refined.mrd2[0] <= 0.05   # medians, iris diameters
    assert refined.iris[0] <= 0.03                                # median, fissure widths
