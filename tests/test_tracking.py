"""The face tracker on real footage (../shared/data/videos).

Every clip is tracked once, frame by frame in order (warm start depends on it), and the
results are shared by the tests below. Thresholds come from the signals measured on
these clips; each says what was measured and why the limit sits where it does.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import DATA, video_frames

from dmask_rt import assets
from dmask_rt.track import FaceLandmarks, FaceTracker
from dmask_rt.track.landmarks import CONTOUR_CORNERS, CONTOUR_LOWER_MID, CONTOUR_UPPER_MID, IRIS_START

VIDEOS = DATA / "videos"
FACE_CLIPS = [
    "p01_gaze_left_right.mp4",
    "p02_gaze_wink.mp4",
    "p03_glasses_blinks.mp4",
    "p04_eye_closure_look_down.mp4",
    "p05_studio_mouth.mp4",
    "p06_talking_blinks.mp4",
    "p07_talking.mp4",
]
# Eye opening as a closed polygon: lower lid corner to corner, then the upper lid back.
EYELID_RING = [0, 1, 2, 3, 4, 5, 6, 7, 8, 15, 14, 13, 12, 11, 10, 9]
RIGHT, LEFT = 0, 1  # the subject's eyes, as in FaceLandmarks.eye_contours


@pytest.fixture(scope="module")
def tracker() -> FaceTracker:
    assets.fetch()  # no-op when the verified models are already installed
    return FaceTracker()


_runs: dict[str, tuple[tuple[int, ...], list[FaceLandmarks | None]]] = {}


@pytest.fixture(scope="module")
def run(tracker: FaceTracker):
    """run(clip) -> (frame shape, per-frame results), tracked once per module."""

    def get(clip: str) -> tuple[tuple[int, ...], list[FaceLandmarks | None]]:
        if clip not in _runs:
            tracker.reset()
            shape, results = (), []
            for rgb in video_frames(VIDEOS / clip):
                shape = rgb.shape
                results.append(tracker.track(rgb))
            _runs[clip] = (shape, results)
        return _runs[clip]

    return get


def openness(lm: FaceLandmarks) -> np.ndarray:
    """(2,) per eye: upper-lid to lower-lid midpoint distance over corner-to-corner width."""
    c = lm.eye_contours
    gap = np.linalg.norm(c[:, CONTOUR_UPPER_MID] - c[:, CONTOUR_LOWER_MID], axis=1)
    return gap / np.linalg.norm(c[:, CONTOUR_CORNERS[0]] - c[:, CONTOUR_CORNERS[1]], axis=1)


def openness_series(results: list[FaceLandmarks | None]) -> np.ndarray:
    """(N, 2) openness of [right, left] eye per frame."""
    return np.array([openness(r) for r in results])


@pytest.mark.parametrize("clip", FACE_CLIPS)
def test_face_found_on_every_frame(run, clip: str) -> None:
    (h, w, _), results = run(clip)
    assert all(r is not None for r in results), f"face lost on frames {[i for i, r in enumerate(results) if r is None]}"
    for i, r in enumerate(results):
        assert r.points.shape == (478, 2) and r.points.dtype == np.float32
        assert r.depth.shape == (478,) and r.eye_contours.shape == (2, 71, 2)
        assert np.isfinite(r.points).all() and np.isfinite(r.depth).all()
        # Measured presence is 1.000 on every frame of these clips; 0.5 is the tracker's gate.
        assert r.confidence >= 0.5, (i, r.confidence)
        # Eyes and irises are always well inside these frames.
        eyes = np.concatenate([r.eye_contours.reshape(-1, 2), r.points[468:]])
        assert (eyes >= 0).all() and (eyes[:, 0] < w).all() and (eyes[:, 1] < h).all(), i
        # The mesh may run past the frame where the face does: p04's chin leaves the
        # bottom edge when she looks down, by at most 3.2% of the frame (16 px of 512).
        # 5% bounds that without letting a misplaced mesh through.
        margin = 0.05 * max(w, h)
        assert (r.points >= -margin).all() and (r.points[:, 0] < w + margin).all(), i
        assert (r.points[:, 1] < h + margin).all(), i


@pytest.mark.parametrize("clip", FACE_CLIPS)
def test_warm_start_skips_the_detector(run, clip: str) -> None:
    _, results = run(clip)
    detected = [i for i, r in enumerate(results) if r.detected]
    # Measured: the detector runs on frame 0 only in every clip; allow 1% re-detections.
    assert detected[0] == 0
    assert len(detected) - 1 <= 0.01 * len(results), detected


@pytest.mark.parametrize("clip", FACE_CLIPS)
def test_iris_centres_inside_their_eyes(run, clip: str) -> None:
    _, results = run(clip)
    for i, r in enumerate(results):
        op = openness(r)
        for eye in (RIGHT, LEFT):
            contour = r.eye_contours[eye]
            centre = r.points[IRIS_START[eye]]
            # Always: the iris centre lies between the eye corners along the eye's axis.
            a, b = contour[CONTOUR_CORNERS[0]], contour[CONTOUR_CORNERS[1]]
            t = np.dot(centre - a, b - a) / np.dot(b - a, b - a)
            assert 0.0 < t < 1.0, (i, eye, t)
            # When the eye is open, inside the lid opening. Measured: the centre leaves the
            # opening only when the lids cover it (blinks, p04 looking down), always at
            # openness <= 0.172; at openness >= 0.2 it is inside by >= 5% of the eye width.
            if op[eye] >= 0.2:
                ring = contour[EYELID_RING].astype(np.float32)
                assert cv2.pointPolygonTest(ring, (float(centre[0]), float(centre[1])), False) > 0, (i, eye)


def test_iris_boundary_order(run) -> None:
    """Both irises list their boundary as image right, top, image left, bottom."""
    _, results = run("p01_gaze_left_right.mp4")
    for r in results[::10]:
        for start in IRIS_START:
            d = r.points[start + 1 : start + 5] - r.points[start]
            assert d[0, 0] > 0 and d[1, 1] < 0 and d[2, 0] < 0 and d[3, 1] > 0, d


def test_p04_slow_closure_both_eyes(run) -> None:
    _, results = run("p04_eye_closure_look_down.mp4")
    op = openness_series(results)
    # Windows picked by eye on the video: lids lowered while looking down (112-129,
    # 226-249) and eyes wide looking at the camera (168-201, 276-353).
    closed = np.concatenate([op[112:130], op[226:250]])
    open_ = np.concatenate([op[168:202], op[276:354]])
    # Measured openness [right, left]: closed max [0.190, 0.201], median [0.126, 0.164];
    # open min [0.348, 0.371], median [0.420, 0.413]. The two ranges do not overlap, and
    # the closed medians are 30% and 40% of the open ones: require < 60%.
    assert (closed.max(axis=0) < open_.min(axis=0)).all()
    assert (np.median(closed, axis=0) < 0.6 * np.median(open_, axis=0)).all()


def test_p04_wink_one_eye(run) -> None:
    _, results = run("p04_eye_closure_look_down.mp4")
    op = openness_series(results)
    # Frames 36-45: she winks with her right eye (seen on the video).
    # Measured: right 0.141-0.160, left 0.344-0.361; open baseline (median of frames
    # 168-201) right 0.417, left 0.406. The winking eye stays under 39% of its baseline,
    # the other over 84%: limits at 50% and 75%.
    wink = op[36:46]
    base = np.median(op[168:202], axis=0)
    assert (wink[:, RIGHT] < 0.5 * base[RIGHT]).all()
    assert (wink[:, LEFT] > 0.75 * base[LEFT]).all()


def test_p02_wink_one_eye(run) -> None:
    _, results = run("p02_gaze_wink.mp4")
    op = openness_series(results)
    # p02 is cut from short takes; her wink lasts one frame, 388 (left eye shut, right
    # eye narrowed but open, seen on the video). Measured there: left 0.204, right 0.304;
    # medians over frames 378-397 without 388: left 0.414, right 0.452. So the winking
    # eye falls to 49% of its neighbours, the other keeps 67%: 0.6 splits them.
    # (The iris model never closes a blurred eye fully: both-eye blinks here bottom out
    # at 0.05-0.09, and the shut eye of this wink reads 0.2.)
    base = np.median(np.delete(op[378:398], 10, axis=0), axis=0)
    assert op[388, LEFT] < 0.6 * base[LEFT]
    assert op[388, RIGHT] > 0.6 * base[RIGHT]
    # And the three frames either side have both eyes open (measured >= 89% of baseline).
    assert (op[385:388] > 0.8 * base).all() and (op[389:392] > 0.8 * base).all()


def test_face_lost_at_cut_to_cartoon(run) -> None:
    _, results = run("p09_face_then_cartoon.mov")
    # Frames 0-71 show the face, 72 is black, 73-168 are a cartoon sky.
    assert all(r is not None for r in results[:72])
    assert all(r is None for r in results[72:])


def test_face_acquired_after_cartoon(run) -> None:
    _, results = run("p09_cartoon_then_face_vfr.mov")
    # Frames 0-95 are the cartoon, 96-167 the face, 168 is black. The detector scores
    # up to 0.62 on cartoon frames 88-91, but the mesh then finds no face (presence
    # <= 0.05), so they stay None.
    assert all(r is None for r in results[:96])
    assert results[96] is not None and results[96].detected
    assert all(r is not None for r in results[96:168])
    assert results[168] is None


def test_no_face_in_cartoon(run) -> None:
    _, results = run("no_face_cartoon.mp4")
    # Detector hits of 0.51-0.62 on frames 87-91 are rejected by the mesh (presence <= 0.28).
    assert len(results) > 0 and all(r is None for r in results)


def test_resolution_change_resets(tracker: FaceTracker) -> None:
    tracker.reset()
    first = next(video_frames(VIDEOS / "p01_gaze_left_right.mp4"))
    other = next(video_frames(VIDEOS / "p09_webcam.mp4"))
    assert tracker.track(first) is not None
    r = tracker.track(other)  # 640x360 after 512x512: old ROI must not be reused
    assert r is not None and r.detected
    assert (r.points[:, 0] < other.shape[1]).all() and (r.points[:, 1] < other.shape[0]).all()


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((48, 64), np.uint8),
        np.zeros((48, 64, 4), np.uint8),
        np.zeros((48, 64, 3), np.float32),
        np.zeros((48, 64, 3), np.uint16),
        np.zeros((64, 3), np.uint8),
    ],
    ids=["gray", "rgba", "float32", "uint16", "2d"],
)
def test_bad_frame_raises(tracker: FaceTracker, frame: np.ndarray) -> None:
    with pytest.raises(ValueError):
        tracker.track(frame)
