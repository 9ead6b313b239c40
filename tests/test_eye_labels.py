"""The labelled eye set: the evaluation on known answers, and the label file itself."""
from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import numpy as np
import pytest

from dmask_rt.evaluate import eye_labels as el
from dmask_rt.evaluate import label_agreement
from dmask_rt.evaluate.label_tool import fit_circle
from dmask_rt.track.eye_outline import EyeOutline, eye_frame, read_eye


def _eye(x0: float, shift_upper: float = 0.0, iris: bool = True, shut: bool = False, cls: str = "normal",
         tilt: float = 0.0) -> el.EyeLabel:
    """A synthetic eye 40 px wide at x0 (corners tilted by `tilt` px), iris radius 8."""
    corners = np.array([[x0, 100.0], [x0 + 40.0, 100.0 + tilt]])
    xs = x0 + np.array([8.0, 14.0, 20.0, 26.0, 32.0])
    gap = 0.3 if shut else 6.0
    upper = np.column_stack([xs, 100.0 + tilt * (xs - x0) / 40 - gap * np.sin(np.pi * (xs - x0) / 40) + shift_upper])
    lower = np.column_stack([xs, 100.0 + tilt * (xs - x0) / 40 + gap * np.sin(np.pi * (xs - x0) / 40)])
    return el.EyeLabel(corners, upper, lower, np.array([x0 + 20.0, 100.5]) if iris else None, 8.0 if iris else None,
                       shut, cls)


def _doc(labels: list[tuple[str, int, list[str], el.EyeLabel, el.EyeLabel]]) -> dict:
    frames = []
    for clip, frame, tags, r, l in labels:
        frames.append({"clip": clip, "frame": frame, "tags": tags, "eyes": {
            "r": {"label": r.to_dict(), "corrected": None}, "l": {"label": l.to_dict(), "corrected": None}}})
    return {"frames": frames}


def _as_method(doc: dict) -> el.Outlines:
    """The labels themselves as a method's outlines (an eye with no iris gets one at the fissure's middle)."""
    out = {}
    for entry, eye, label in el.labelled_eyes(doc):
        o = label.to_outline()
        if label.iris_centre is None:
            o = EyeOutline(o.corners, o.upper, o.lower, o.corners.mean(axis=0), 8.0)
        out[(entry["clip"], entry["frame"], eye)] = o
    return out


DOC = _doc([
    ("a.mp4", 3, [], _eye(10), _eye(80, tilt=3.0)),
    ("a.mp4", 9, ["extreme-gaze"], _eye(10, cls="wide-open"), _eye(80, cls="narrowed")),
    ("b.mp4", 4, ["low-res"], _eye(10, iris=False, shut=True, cls="shut"), _eye(80, shut=True, cls="shut")),
])


def test_the_labels_as_a_method_score_zero_error_and_full_accuracy() -> None:
    res = el.evaluate(DOC, _as_method(DOC))
    assert set(res) == {"all", "normal", "wide-open", "narrowed", "shut", "extreme-gaze", "low-res"}
    s = res["all"]
    assert s.n == 6 and s.n_iris == 5 and s.missed == 0
    for v in (s.mrd1, s.mrd2, s.lid, s.iris):
        assert v == pytest.approx((0.0, 0.0), abs=1e-9)
    assert s.shut_acc == 1.0
    assert res["shut"].n == 2 and math.isnan(res["shut"].mrd1[0])  # MRD only on open eyes


@pytest.mark.parametrize("shift", [0.8, -1.6, 2.4])
def test_a_lid_shifted_by_a_known_amount_gives_that_error_in_iris_diameters(shift: float) -> None:
    method = _as_method(DOC)
    key = ("a.mp4", 3, "r")
    truth = el.EyeLabel.from_dict(DOC["frames"][0]["eyes"]["r"]["label"])
    method[key] = EyeOutline(truth.corners, truth.upper + [0.0, shift], truth.lower, truth.iris_centre, truth.iris_radius)
    rows = {(r.clip, r.frame, r.eye): r for r in el.errors(DOC, method)}
    # MRD1 changes by the shift over the iris diameter (16 px); MRD2 and the iris not at all.
    assert rows[key].mrd1 == pytest.approx(abs(shift) / 16.0, abs=1e-9)
    assert rows[key].mrd2 == pytest.approx(0.0, abs=1e-9) and rows[key].iris == pytest.approx(0.0, abs=1e-9)
    # The lid error averages the upper lid's error over the opening with the lower lid's zero:
    # the upper lid is shifted between the first and last margin points (linear to the corners).
    s = np.linspace(0.0, 40.0, 41)
    dh = np.interp(s, [0, 8, 32, 40], [0, abs(shift), abs(shift), 0])
    assert rows[key].lid == pytest.approx(dh.mean() / 2 / 16.0, rel=1e-6)
    assert all(r.lid == pytest.approx(0.0, abs=1e-9) for k, r in rows.items() if k != key)


def test_iris_centre_error_in_fissure_widths_and_a_missed_face() -> None:
    method = _as_method(DOC)
    o = method[("a.mp4", 9, "l")]
    method[("a.mp4", 9, "l")] = EyeOutline(o.corners, o.upper, o.lower, o.iris_centre + [3.0, 4.0], o.iris_radius)
    method[("a.mp4", 3, "l")] = None
    rows = {(r.clip, r.frame, r.eye): r for r in el.errors(DOC, method)}
    assert rows[("a.mp4", 9, "l")].iris == pytest.approx(5.0 / 40.0)
    miss = rows[("a.mp4", 3, "l")]
    assert not miss.found and not miss.shut_ok and math.isnan(miss.lid)
    s = el.evaluate(DOC, method)["all"]
    assert s.missed == 1 and s.shut_acc == pytest.approx(5 / 6)


def test_a_shut_eye_read_open_counts_against_accuracy_and_its_lid_error_uses_the_clips_iris() -> None:
    method = _as_method(DOC)
    key = ("b.mp4", 4, "r")  # labelled shut, no iris visible
    o = method[key]
    wide = _eye(10)
    method[key] = EyeOutline(o.corners, wide.upper, wide.lower, o.iris_centre, 8.0)
    assert not read_eye(method[key]).shut
    rows = {(r.clip, r.frame, r.eye): r for r in el.errors(DOC, method)}
    assert not rows[key].shut_ok
    # b.mp4's right eye has no labelled iris: the unit is 0.4 fissure widths (16 px here).
    s = np.linspace(0.0, 40.0, 41)
    truth = el.EyeLabel.from_dict(DOC["frames"][2]["eyes"]["r"]["label"])
    xs = [0, *(truth.upper[:, 0] - 10), 40]
    gap = (np.interp(s, xs, [0, *np.abs(wide.upper[:, 1] - truth.upper[:, 1]), 0])
           + np.interp(s, xs, [0, *np.abs(wide.lower[:, 1] - truth.lower[:, 1]), 0])) / 2
    assert rows[key].lid == pytest.approx(gap.mean() / 16.0, rel=1e-6)


def test_label_round_trip_and_outline_conversion() -> None:
    lab = _eye(10, tilt=2.0)
    again = el.EyeLabel.from_dict(json.loads(json.dumps(lab.to_dict())))
    np.testing.assert_allclose(again.upper, lab.upper, atol=0.005)
    assert read_eye(lab.to_outline()).mrd1 == pytest.approx(read_eye(again.to_outline()).mrd1, abs=1e-3)
    shut = _eye(10, iris=False, shut=True, cls="shut")
    r = read_eye(shut.to_outline())
    assert r.shut and math.isnan(r.mrd1)
    assert shut.problems() == [] and _eye(10, cls="squint").problems() != []


def test_corrections_count_points_off_the_proposal_curve() -> None:
    proposal = _eye(10).to_outline()
    start = el.resample(proposal)
    same = el.EyeLabel.from_outline(start, False, "normal")
    c = el.corrections(same, proposal)
    assert not any([*c["corners"], *c["upper"], *c["lower"], c["iris_centre"], c["iris_radius"]])
    moved = el.EyeLabel(same.corners + [[0.0, 0.0], [0.0, 0.7]], same.upper + [[0, 0], [0, 1.0], [0, 0], [0, 0], [0, 0]],
                        same.lower, same.iris_centre, same.iris_radius + 0.6, False, "normal")
    c = el.corrections(moved, proposal)
    assert c["corners"] == [False, True] and c["upper"] == [False, True, False, False, False]
    assert c["iris_radius"] and not c["iris_centre"]


def test_fit_circle_recovers_a_circle_from_an_arc() -> None:
    t = np.linspace(-0.6, 0.9, 5)
    centre, radius = fit_circle(np.column_stack([30 + 7.5 * np.cos(t), 40 + 7.5 * np.sin(t)]))
    np.testing.assert_allclose(centre, [30, 40], atol=1e-9)
    assert radius == pytest.approx(7.5)


def test_concurrent_updates_of_different_frames_all_land(tmp_path: Path) -> None:
    path = tmp_path / "labels.json"
    path.write_text(el.dumps({"frames": [{"clip": "c", "frame": i, "tags": [], "eyes": {
        "r": {"label": None}, "l": {"label": None}}} for i in range(8)]}))

    def label(i: int) -> None:
        for _ in range(5):
            el.update(path, lambda doc: el.find_frame(doc, "c", i)["eyes"]["r"].update(label=_eye(10).to_dict()))

    threads = [threading.Thread(target=label, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(1 for _ in el.labelled_eyes(el.load(path))) == 8


def test_the_label_file_is_well_formed() -> None:
    doc = el.load()
    assert len(doc["frames"]) >= 84
    keys = [(e["clip"], e["frame"]) for e in doc["frames"]]
    assert len(set(keys)) == len(keys)
    for entry in doc["frames"]:
        assert set(entry["tags"]) <= set(el.TAGS)
        assert (el.VIDEOS / entry["clip"]).exists() or not el.VIDEOS.exists()
        for eye in el.EYES:
            d = entry["eyes"][eye]
            EyeOutline.from_dict(d["proposal"])
            if d["label"] is None:
                continue
            lab = d["label"]
            assert {"corners", "upper", "lower", "iris", "shut", "class"} <= set(lab)
            assert len(lab["corners"]) == 2 and len(lab["upper"]) >= 3 and len(lab["lower"]) >= 3
            assert isinstance(lab["shut"], bool)
            assert lab["iris"] is None or (len(lab["iris"]["centre"]) == 2 and lab["iris"]["radius"] > 0)
            assert el.EyeLabel.from_dict(lab).problems() == [], (entry["clip"], entry["frame"], eye)
            assert d["corrected"] is not None
    assert sum(1 for _ in el.labelled_eyes(doc)) > 0


def _shifted(doc: dict, dy_upper: float) -> dict:
    """`doc` with every upper lid moved `dy_upper` px down across its eye (a second labeller's convention)."""
    out = json.loads(json.dumps(doc))
    for entry in out["frames"]:
        for eye in el.EYES:
            lab = entry["eyes"][eye]["label"]
            n = eye_frame(np.asarray(lab["corners"], float))[2]
            lab["upper"] = (np.asarray(lab["upper"], float) + dy_upper * n).tolist()
    return out


def test_the_consensus_of_two_labellings_is_their_mean_and_drops_disputed_eyes() -> None:
    second = _shifted(DOC, 1.0)
    # the second labeller calls frame 4's left eye open: that eye is disputed
    entry = second["frames"][2]["eyes"]["l"]["label"]
    entry["shut"], entry["class"] = False, "half-shut"
    doc, disputed = label_agreement.consensus(DOC, second)
    assert disputed == 1
    kept = {(e["clip"], e["frame"], k): lab for e, k, lab in el.labelled_eyes(doc)}
    assert len(kept) == 5 and ("b.mp4", 4, "l") not in kept
    # a labelling's consensus with itself is itself, resampled at FRACTIONS of the fissure
    itself = {(e["clip"], e["frame"], k): lab for e, k, lab in el.labelled_eyes(label_agreement.consensus(DOC, DOC)[0])}
    firsts = {(e["clip"], e["frame"], k): lab for e, k, lab in el.labelled_eyes(DOC)}
    for key, lab in kept.items():
        first = firsts[key]
        assert read_eye(itself[key].to_outline()).opening == pytest.approx(read_eye(first.to_outline()).opening, abs=0.01)
        got, want = read_eye(lab.to_outline()), read_eye(itself[key].to_outline())
        if first.iris_centre is not None and not first.shut:
            # half the 1 px, in iris diameters (labels are stored to 0.01 px: 0.0006 of a 16 px iris)
            assert got.mrd1 == pytest.approx(want.mrd1 - 0.5 / 16.0, abs=1e-3)
            assert got.mrd2 == pytest.approx(want.mrd2, abs=1e-3)
        assert np.allclose(lab.corners, first.corners) and lab.cls == first.cls


def test_a_labelling_agrees_with_itself_and_a_shifted_one_by_the_shift() -> None:
    same = label_agreement.agreement(DOC, DOC)["all"]
    assert same.mrd1 == pytest.approx((0.0, 0.0), abs=1e-9) and same.shut_acc == 1.0
    shifted = label_agreement.agreement(DOC, _shifted(DOC, 1.6))
    assert shifted["all"].mrd1[0] == pytest.approx(1.6 / 16.0, abs=1e-9)
    assert shifted["all"].mrd2 == pytest.approx((0.0, 0.0), abs=1e-9)


def test_the_second_labelling_covers_the_first_blind_and_well_formed() -> None:
    """Every eye of the label set is labelled twice; the second labelling is well-formed and
    was made from the same proposals (the tracker's), not from the first labels."""
    first, second = el.load(), el.load(el.LABELS_PATH.with_name("eye_labels_second.json"))
    ones = {(e["clip"], e["frame"], k): (e, lab) for e, k, lab in el.labelled_eyes(first)}
    twos = {(e["clip"], e["frame"], k): (e, lab) for e, k, lab in el.labelled_eyes(second)}
    assert set(ones) == set(twos)
    for key, (entry, lab) in twos.items():
        assert lab.problems() == [], key
        assert entry["eyes"][key[2]]["proposal"] == ones[key][0]["eyes"][key[2]]["proposal"], key
    # blind: the second is not the first copied (its points mostly differ)
    pairs = [(ones[k][1].upper, twos[k][1].upper) for k in ones]
    same = sum(a.shape == b.shape and np.allclose(a, b) for a, b in pairs)
    assert same < 0.05 * len(ones)
    agree = label_agreement.agreement(first, second)["all"]
    assert agree.n == len(ones) and np.isfinite(agree.mrd1[0]) and 0.0 < agree.mrd1[0] < 0.2
