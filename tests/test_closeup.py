"""The eye close-up: its camera (known answers) and what the Masker renders through it."""
from __future__ import annotations

import numpy as np
import pytest

from dmask_rt.evaluate.avatar_pixels import read_frame
from dmask_rt.model.camera import Camera
from dmask_rt.model.drawn_eye import EyeGeometry
from dmask_rt.model.generic_face import GenericFace
from dmask_rt.model.mesh_indices import EYE_CORNERS
from dmask_rt.pipeline import Masker, avatar_pose
from dmask_rt.render.renderer import AvatarRenderer
from dmask_rt.track.eye_outline import read_eye

from conftest import DATA, video_frames

VIDEOS = DATA / "videos"
SIZE = (960, 360)
EYE_WIDTH_MM = 25.0
FRAME = Camera.for_image(640, 480)


def frontal_eyes(x: float = 40.0, y: float = -20.0, z: float = 600.0) -> np.ndarray:
    """Eyeball centres of a frontal head 63 mm between the eyes, its midpoint at (x, y, z)."""
    return np.array([[x - 31.5, y, z], [x + 31.5, y, z]])


def test_frontal_eyes_sit_symmetric_about_the_middle_at_the_stated_share() -> None:
    """The span between the eyes, 63 mm, of 63 + 2 x 25 mm: 63/113 of the width, centred."""
    view = FRAME.closeup(frontal_eyes(), EYE_WIDTH_MM, *SIZE)
    assert (view.width, view.height) == SIZE
    (ur, vr), (ul, vl) = view.project(frontal_eyes())
    assert ur + ul == pytest.approx(SIZE[0]) and vr == pytest.approx(SIZE[1] / 2) and vl == pytest.approx(SIZE[1] / 2)
    assert (ul - ur) / SIZE[0] == pytest.approx(63.0 / 113.0)
    # The margin's edges, an eye width beyond each eye, are the output's edges.
    edges = view.project(frontal_eyes() + [[-EYE_WIDTH_MM, 0, 0], [EYE_WIDTH_MM, 0, 0]])
    assert edges[:, 0] == pytest.approx([0.0, SIZE[0]])
    assert view.fy / view.fx == FRAME.fy / FRAME.fx  # square pixels stay square


def test_template_eye_openings_fill_three_quarters_of_the_width() -> None:
    """The Masker's margin, the template's eye width: its frontal eye openings, outer
    corner to outer corner, span 85.1 of 63 + 2 x 25.07 mm at the eyes' depth (0.753),
    0.760 of the width as the corners lie 5 mm nearer the camera than the eyeballs' centres."""
    face = GenericFace.load()
    masker_margin = float(np.linalg.norm(face.mean[EYE_CORNERS[:, 0]] - face.mean[EYE_CORNERS[:, 1]], axis=1).max())
    t = np.array([10.0, 5.0, 500.0])
    view = FRAME.closeup(face.eye_centres + t, masker_margin, *SIZE)
    u = view.project(face.mean[EYE_CORNERS.ravel()] + t)[:, 0]
    assert (u.max() - u.min()) / SIZE[0] == pytest.approx(0.760, abs=0.002)
    assert 0 < u.min() and u.max() < SIZE[0]


def test_closeup_is_the_frame_camera_zoomed_about_the_eyes() -> None:
    """Same optical centre: every point's close-up pixel is its frame pixel scaled about the
    eyes' midpoint, u' = s (u - u_m) + W/2, with s = W m_z / (S fx)."""
    eyes = frontal_eyes() @ np.array([[0.9, 0, 0.2], [0, 1, 0], [-0.2, 0, 0.9]]).T  # a turned head
    view = FRAME.closeup(eyes, EYE_WIDTH_MM, *SIZE)
    m = eyes.mean(axis=0)
    s = SIZE[0] * m[2] / ((np.linalg.norm(eyes[1] - eyes[0]) + 2 * EYE_WIDTH_MM) * FRAME.fx)
    points = np.random.default_rng(0).normal(m, [40, 30, 20], size=(50, 3))
    expected = s * (FRAME.project(points) - FRAME.project(m[None])) + np.array(SIZE) / 2
    assert np.allclose(view.project(points), expected)


def test_framing_follows_the_head_only() -> None:
    """A head twice as far away, or moved aside, leaves its eyes where they were in the output."""
    reference = FRAME.closeup(frontal_eyes(), EYE_WIDTH_MM, *SIZE).project(frontal_eyes())
    for eyes in (frontal_eyes(z=1200.0), frontal_eyes(x=-80.0, y=50.0, z=450.0)):
        assert np.allclose(FRAME.closeup(eyes, EYE_WIDTH_MM, *SIZE).project(eyes), reference)


# --- through the Masker, on a real clip ---------------------------------------------------


@pytest.fixture(scope="module")
def p02() -> list[np.ndarray]:
    """p02: gaze shifts, blinks, closures and a wink."""
    return list(video_frames(VIDEOS / "p02_gaze_wink.mp4", step=2))


@pytest.fixture(scope="module")
def closeup_results(p02: list[np.ndarray]):
    with Masker(closeup_size=SIZE) as masker:
        results = [masker.process(frame) for frame in p02]
        yield masker, results


def test_closeup_shows_the_eyes_the_parameters_draw(closeup_results) -> None:
    """Read back from its pixels (the palette reader of `dmask eval`), every close-up shows
    each eye as drawn through the close-up camera: shut exactly when the parameters shut
    it (no eyeball pixel); open with both lid margins within 3 px (0.03 iris diameters)
    of the drawn ones at the iris, and the iris, about 100 px across, where drawn: its
    limbus circle's centre within a tenth of its radius for 9 in 10 eyes whose limbus
    shows (measured: median 0.2 px, 95% within 5 px; the reader's circle strays where
    the lids hide most of the limbus)."""
    masker, results = closeup_results
    geometry = EyeGeometry(masker.face)
    shut = opened = seen_limbus = centred = 0
    for result in results:
        assert result.face_found and result.closeup.shape == (SIZE[1], SIZE[0], 3)
        eyes = np.array([result.avatar.rotation @ c + result.avatar.translation for c in masker.face.eye_centres])
        view = masker._camera.closeup(eyes, masker.closeup_margin_mm, *SIZE)
        drawn = geometry.outlines(result.avatar, view)
        for outline, seen in zip(drawn, read_frame(result.closeup, drawn)):
            if read_eye(outline).shut:
                assert seen.eyeball_px == 0
                shut += 1
                continue
            assert seen.eyeball_px > 0 and max(map(abs, seen.errors_px[:2])) < 3.0
            assert outline.iris_radius == pytest.approx(50, rel=0.1)
            opened += 1
            if seen.iris_centre is not None:
                seen_limbus += 1
                centred += np.linalg.norm(seen.iris_centre - outline.iris_centre) < outline.iris_radius / 10
    assert shut >= 50 and opened >= 400      # p02's closures and wink are in the sample
    assert centred / seen_limbus > 0.9


def test_closeup_is_rendered_from_the_parameters_alone(closeup_results, p02: list[np.ndarray]) -> None:
    """A renderer that never saw the camera frame draws the same close-up from the
    frame's parameters: nothing of the input picture reaches it."""
    masker, results = closeup_results
    face = masker.face
    with AvatarRenderer(*SIZE, face.topology(), eyeball_radius=12.0, iris_radius=5.85, pupil_radius=2.0) as renderer:
        for result in results[::25]:
            vertices, eyes = avatar_pose(face, result.avatar)
            view = masker._camera.closeup(np.array([e.center for e in eyes]), masker.closeup_margin_mm, *SIZE)
            assert np.array_equal(renderer.render(view, vertices, eyes), result.closeup)


def test_closeup_off_costs_no_render_and_switches_at_run_time(p02: list[np.ndarray], monkeypatch) -> None:
    calls = []
    render = AvatarRenderer.render
    monkeypatch.setattr(AvatarRenderer, "render", lambda self, *a: calls.append(self.size) or render(self, *a))
    with Masker() as masker:
        off = masker.process(p02[0])
        assert off.closeup is None and "closeup" not in off.timings_ms and calls == [(512, 512)]
        masker.closeup_size = (640, 240)
        on = masker.process(p02[1])
        assert on.closeup.shape == (240, 640, 3) and on.timings_ms["closeup"] > 0
        assert calls[1:] == [(512, 512), (640, 240)]
        masker.closeup_size = None
        assert masker.process(p02[2]).closeup is None and len(calls) == 4


def test_no_face_no_closeup() -> None:
    """Without a face there is no close-up (the caller shows its placeholder)."""
    with Masker(closeup_size=SIZE) as masker:
        for frame in list(video_frames(VIDEOS / "no_face_cartoon.mp4", step=10))[:4]:
            result = masker.process(frame)
            assert not result.face_found and result.closeup is None
