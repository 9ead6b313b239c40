"""One frame through the mask, on real faces: fail-closed output, sizes, fit quality."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from dmask_rt.pipeline import Masker
from dmask_rt.render.palette import BACKGROUND_RGB
from dmask_rt.render.placeholder import placeholder_frame

from conftest import DATA, video_frames

VIDEOS = DATA / "videos"


@pytest.fixture(scope="module")
def masker() -> Masker:
    with Masker() as m:
        yield m


def test_no_face_gives_only_placeholder_frames(masker: Masker) -> None:
    masker.tracker.reset()
    n = 0
    for frame in video_frames(VIDEOS / "no_face_cartoon.mp4", step=3):
        out = masker.process(frame)
        h, w = frame.shape[:2]
        assert not out.face_found and out.params is None
        assert np.array_equal(out.image, placeholder_frame(w, h))
        n += 1
    assert n > 20


def test_face_lost_at_the_cut_switches_to_the_placeholder(masker: Masker) -> None:
    """p09: a face for 72 frames, then a hard cut to a cartoon (test_tracking.py has the frame numbers)."""
    masker.tracker.reset()
    results = [masker.process(f) for f in video_frames(VIDEOS / "p09_face_then_cartoon.mov")]
    found = np.array([r.face_found for r in results])
    assert found[:72].all() and not found[73:].any()
    h, w = results[0].image.shape[:2]
    for r in results[73:]:
        assert np.array_equal(r.image, placeholder_frame(w, h))


def test_avatar_frames_hold_no_input_pixels_outside_the_face(masker: Masker) -> None:
    """Everything outside the rendered face is the plain background, whatever the camera saw.

    p05 is filmed against a studio backdrop that is nowhere near the avatar's colour.
    """
    masker.tracker.reset()
    frames = list(video_frames(VIDEOS / "p05_studio_mouth.mp4", step=20))
    for frame in frames:
        out = masker.process(frame)
        assert out.face_found and out.image.shape == frame.shape
        background = np.all(out.image == BACKGROUND_RGB, axis=2)
        # The face covers a minority of the frame; the rest is exactly the background colour.
        assert background.mean() > 0.4


def test_low_confidence_fails_closed() -> None:
    """Nothing passes a confidence bar no face can reach: every frame is the placeholder."""
    with Masker(min_confidence=1.01) as strict:
        for frame in video_frames(VIDEOS / "p09_webcam.mp4", step=12):
            out = strict.process(frame)
            assert not out.face_found
            assert np.array_equal(out.image, placeholder_frame(frame.shape[1], frame.shape[0]))


def test_size_change_mid_stream_follows_the_input(masker: Masker) -> None:
    masker.tracker.reset()
    for i, frame in enumerate(video_frames(VIDEOS / "p01_gaze_left_right.mp4", step=6)):
        if i % 2:
            frame = cv2.resize(frame, (640, 480))
        out = masker.process(frame)
        assert out.image.shape == frame.shape
        assert out.face_found


@pytest.mark.parametrize(
    "clip", ["p01_gaze_left_right.mp4", "p03_glasses_blinks.mp4", "p05_studio_mouth.mp4", "p07_talking.mp4"]
)
def test_model_explains_real_faces(masker: Masker, clip: str) -> None:
    """The fitted generic face, with the patient's shape learned, lands on the landmarks.

    Measured here (every 2nd frame): median RMS 1.0-2.0 px on these clips, a few percent
    of the iris distance (85-130 px). The bound, 4% of that distance, leaves room for
    blinks and talking but fails a fit that has lost the face.
    """
    masker.tracker.reset()
    ratios = []
    for frame in video_frames(VIDEOS / clip, step=3):
        out = masker.process(frame)
        assert out.face_found
        iod_px = masker._camera.fx * 63.0 / out.params["head_z_mm"]
        ratios.append(out.params["fit_rms_px"] / iod_px)
    assert np.median(ratios) < 0.04


def test_two_faces_mask_the_larger_and_pass_neither(masker: Masker) -> None:
    """Two people in view: the larger face drives the avatar, and no face reaches the output."""
    big = next(video_frames(VIDEOS / "p05_studio_mouth.mp4"))  # 480x480
    small = cv2.resize(next(video_frames(VIDEOS / "p07_talking.mp4")), (240, 240))
    canvas = np.zeros((480, 720, 3), np.uint8)
    canvas[:, :480] = big
    canvas[120:360, 480:] = small
    masker.tracker.reset()
    landmarks = masker.tracker.track(canvas)
    assert landmarks is not None and landmarks.points[:, 0].max() < 480  # on the big face
    out = masker.process(canvas)
    assert out.face_found
    background = np.all(out.image == BACKGROUND_RGB, axis=2)
    assert background[:, 480:].all()  # where the second face was: nothing but background


def test_drawn_eyes_are_reported_when_asked_and_read_as_the_tracked_ones() -> None:
    """With report_drawn the result carries the avatar's drawn eye outlines, and they read
    (MRD in iris diameters, iris place) as the refined tracker read the patient's eyes."""
    from dmask_rt.track.eye_outline import read_eye

    frames = list(video_frames(VIDEOS / "p09_webcam.mp4"))[:12]
    with Masker(report_drawn=True) as m:
        for frame in frames:
            result = m.process(frame)
        landmarks = m.tracker.track(frames[-1])   # the same frame again: the same reading
    assert result.face_found and result.drawn is not None
    for drawn, seen in zip(result.drawn, landmarks.eyes):
        d, s = read_eye(drawn), read_eye(seen)
        assert not d.shut and not s.shut
        assert abs(d.mrd1 - s.mrd1) < 0.01 and abs(d.mrd2 - s.mrd2) < 0.01
        assert abs(d.place_h - s.place_h) < 0.005
    with Masker() as plain:
        assert plain.process(frames[0]).drawn is None


def test_lids_over_irises_turned_into_the_corners_of_p02_are_drawn_as_read() -> None:
    """p02's first 230 frames look hard left and right (irises up to 0.36 of the fissure
    off its middle): over each turned open eye the avatar draws MRD at the iris as the
    tracker read it, and the lid's height at the fissure's middle as read too, where the
    generic eye can show both. Matched at the iris alone (before the lids' tilt), the
    drawn upper lid's middle stood off by a median 0.067 iris diameters at 0.15-0.3 off
    the middle and 0.251 deeper, a retraction the patient did not have; measured now:
    0.000 and 0.076 (deeper, the drawn eye cannot show both and MRD comes first)."""
    from itertools import islice

    from dmask_rt.fit.eye_transfer import PLACE_MIN_OPENING
    from dmask_rt.track.eye_outline import read_eye

    pairs = []   # (the tracker's reading that the transfer got, what the avatar draws)
    with Masker(report_drawn=True) as m:
        transfer = m.transfer.apply

        def recorded(params, camera, readings):
            recorded.readings = readings
            return transfer(params, camera, readings)

        m.transfer.apply = recorded
        for frame in islice(video_frames(VIDEOS / "p02_gaze_wink.mp4"), 230):
            result = m.process(frame)
            if result.face_found:
                pairs.extend(zip(recorded.readings, map(read_eye, result.drawn)))
    turned = [(s, d) for s, d in pairs if s is not None and not s.shut and s.opening >= PLACE_MIN_OPENING
              and 0.0 <= s.place_h <= 1.0 and abs(s.place_h - 0.5) >= 0.15]
    assert len(turned) >= 40
    assert max(abs(d.mrd1 - s.mrd1) for s, d in turned) < 0.01
    off = np.array([abs(s.place_h - 0.5) for s, _ in turned])
    mid_error = np.array([abs(d.upper_mid - s.upper_mid) for s, d in turned])
    assert (off >= 0.3).sum() >= 10
    assert np.median(mid_error[off < 0.3]) < 0.01 and np.median(mid_error[off >= 0.3]) < 0.12
