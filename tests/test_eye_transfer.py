"""Known answers for the eye transfer: the avatar draws the patient's eye in clinical units.

Readings in, parameters out, and what the avatar then draws is read back twice: from
its projected geometry (`model/drawn_eye.py`) and from the rendered pixels (the real
renderer, the generic face, a frame large enough that 1 mm spans several pixels).
"""
from __future__ import annotations

import numpy as np
import pytest

from dmask_rt.evaluate.clinical import eye_angles, prism_dioptres
from dmask_rt.fit.eye_transfer import MIN_OPEN_DRAWN, PLACE_MIN_OPENING, EyeTransfer
from dmask_rt.fit.gauss_newton import rodrigues
from dmask_rt.model.camera import Camera
from dmask_rt.model.drawn_eye import EyeGeometry
from dmask_rt.model.eyeball import EYEBALL_RADIUS_MM, IRIS_RADIUS_MM, PUPIL_RADIUS_MM
from dmask_rt.model.generic_face import GenericFace
from dmask_rt.model.params import AvatarParams
from dmask_rt.pipeline import avatar_pose
from dmask_rt.render import AvatarRenderer
from dmask_rt.track.eye_outline import SHUT_OPENING, EyeReadings, eye_frame, margin_profile, read_eye
from dmask_rt.track.eye_refine import IRIS_CENTRAL
from tests.test_render import is_iris_or_pupil, is_sclera

IRIS_MM = 2 * IRIS_RADIUS_MM


@pytest.fixture(scope="module")
def face():
    return GenericFace.load()


@pytest.fixture(scope="module")
def geometry(face):
    return EyeGeometry(face)


@pytest.fixture
def transfer(geometry):
    return EyeTransfer(geometry)   # per test: it learns each stream's fissure proportions


def neutral(face, z: float = 500.0) -> AvatarParams:
    return AvatarParams(
        np.eye(3), np.array([0.0, 0.0, z]), np.zeros(face.n_expression), np.zeros(8), np.zeros((2, 2))
    )


def readings(mrd1: float, mrd2: float, place_h: float = 0.5, place_v: float = -0.05) -> EyeReadings:
    return EyeReadings(mrd1, mrd2, place_h, place_v, opening=(mrd1 + mrd2) / 2.5, shut=False)


SHUT = EyeReadings(np.nan, np.nan, np.nan, np.nan, opening=0.01, shut=True)


def test_random_eyes_round_trip(face, geometry, transfer):
    """Readings of the drawn eyes of random parameters (pose, expression, lids, squints),
    transferred onto a neutral start, are drawn again with the same readings: the lids
    exactly, the iris's offsets from the fissure's middle exactly in iris diameters, and
    its place in fissure widths as nearly as the stream's learnt fissure proportion
    (one steady stretch over 60 poses) matches each pose's."""
    rng = np.random.default_rng(7)
    camera = Camera.for_image(640, 480)
    errors = []
    for _ in range(60):
        truth = AvatarParams(
            rodrigues(rng.normal(0.0, 0.15, 3)), np.array([rng.normal(0, 20), rng.normal(0, 20), rng.uniform(400, 700)]),
            rng.normal(0.0, 0.5, face.n_expression),
            np.array([rng.uniform(-0.6, 0.6), rng.normal(0, 0.1), rng.uniform(-0.3, 0.3), rng.normal(0, 0.1)] * 2),
            rng.uniform(-0.6, 0.6, (2, 2)),
        )
        wanted = [read_eye(o) for o in geometry.outlines(truth, camera)]
        start = truth.copy()   # as fitted: the rotation off by ~6 degrees, the lids at the template
        start.eyes += rng.normal(0.0, 0.1, (2, 2))
        start.lids[:] = 0.0
        got = [read_eye(o) for o in geometry.outlines(transfer.apply(start, camera, tuple(wanted)), camera)]
        for w, g in zip(wanted, got):
            if not w.shut:
                placed = w.opening >= PLACE_MIN_OPENING   # else the fit's rotation is kept
                offsets = lambda r: np.array([(r.place_h - 0.5) * r.width, r.place_v * r.width])  # noqa: E731
                errors.append([w.mrd1 - g.mrd1, w.mrd2 - g.mrd2, w.upper_mid - g.upper_mid, w.lower_mid - g.lower_mid,
                               *(offsets(w) - offsets(g) if placed else (0.0, 0.0)),
                               w.place_h - g.place_h if placed else 0.0, w.place_v - g.place_v if placed else 0.0])
    errors = np.abs(np.array(errors))
    assert len(errors) > 100
    assert errors[:, :4].max() < 0.005      # iris diameters
    assert errors[:, 4:6].max() < 1e-4      # iris diameters
    assert errors[:, 6:].max() < 0.005      # fissure widths


def test_patient_proportions_do_not_change_the_readings(face, geometry, transfer):
    """The same readings come out of the avatar whatever eye they were read on: the
    generic eye draws a retracted lid (MRD1 0.7) and a converged iris as read, not as millimetres."""
    camera = Camera.for_image(640, 480)
    wanted = (readings(0.7, 0.3, 0.55, -0.08), readings(0.4, 0.45, 0.82, 0.02))
    got = [read_eye(o) for o in geometry.outlines(transfer.apply(neutral(face), camera, wanted), camera)]
    for w, g in zip(wanted, got):
        assert g.mrd1 == pytest.approx(w.mrd1, abs=0.005)
        assert g.mrd2 == pytest.approx(w.mrd2, abs=0.005)
        assert g.place_h == pytest.approx(w.place_h, abs=1e-4)
        assert g.place_v == pytest.approx(w.place_v, abs=1e-4)
        assert g.sclera_above == w.sclera_above and g.sclera_below == w.sclera_below


def test_lids_over_a_turned_iris_keep_their_height_along_the_eye(face, geometry, transfer):
    """A turned iris (0.72 of the fissure) with its lids as labelled on the dev clips' turned
    eyes: MRD at the iris and the lids' heights at the fissure's middle are all drawn as
    read. Matching MRD alone (the mids unread) drew the lower lid 0.17 iris diameters too
    low at the middle: the template lid rises toward the corner the iris sits in."""
    camera = Camera.for_image(640, 480)
    want = EyeReadings(0.35, 0.35, 0.72, -0.02, opening=0.3, shut=False, upper_mid=0.55, lower_mid=0.25)
    got = read_eye(geometry.outlines(transfer.apply(neutral(face), camera, (want, None)), camera)[0])
    for name in ("mrd1", "mrd2", "upper_mid", "lower_mid"):
        assert getattr(got, name) == pytest.approx(getattr(want, name), abs=0.005), name


def test_an_iris_deep_in_a_corner_keeps_mrd_first(face, geometry):
    """At 0.85 of the fissure (p02's eyes) the generic fissure, narrower there than the
    patient's, cannot show both MRD and the lids' height at the middle: MRD is drawn as
    read, and the middle comes at least twice as close as with MRD alone, which raised the
    upper lid and lowered the lower one all along the eye (a retraction the patient does
    not have)."""
    camera = Camera.for_image(640, 480)
    read = dict(mrd1=0.40, mrd2=0.46, place_h=0.85, place_v=-0.02, opening=0.3, shut=False)
    want = EyeReadings(**read, upper_mid=0.68, lower_mid=0.28)
    got = read_eye(geometry.outlines(EyeTransfer(geometry).apply(neutral(face), camera, (want, None)), camera)[0])
    alone = read_eye(geometry.outlines(EyeTransfer(geometry).apply(neutral(face), camera, (EyeReadings(**read), None)),
                                       camera)[0])
    assert got.mrd1 == pytest.approx(want.mrd1, abs=0.005) and got.mrd2 == pytest.approx(want.mrd2, abs=0.005)
    for name in ("upper_mid", "lower_mid"):
        assert abs(getattr(got, name) - getattr(want, name)) < 0.5 * abs(getattr(alone, name) - getattr(want, name)), name


def test_each_eye_is_solved_alone(face, geometry, transfer):
    """A squint stays a squint: turning one eye's reading leaves the other eye's drawing alone."""
    camera = Camera.for_image(640, 480)
    straight = (readings(0.4, 0.45, 0.5), readings(0.4, 0.45, 0.5))
    squint = (readings(0.4, 0.45, 0.5), readings(0.4, 0.45, 0.85))
    a = transfer.apply(neutral(face), camera, straight)
    b = transfer.apply(neutral(face), camera, squint)
    assert np.allclose(a.eyes[0], b.eyes[0]) and np.allclose(a.lids[:4], b.lids[:4])
    assert b.eyes[1, 0] - a.eyes[1, 0] < -np.radians(15)   # the left eye turns in (towards the image left)


def test_the_patient_fissure_length_is_drawn_so_eye_turns_read_alike(face, geometry, transfer):
    """A patient whose fissures span more iris diameters than the generic eye's (stretched
    by 0.12 and 0.05) and who looks around near the middle: the transfer learns both
    stretches, and then the avatar's eye turn reads as the patient's in degrees and in
    prism dioptres between the eyes, not only as the place in the fissure. A turned iris
    (the landmark models pull its corner) teaches nothing, and a new face starts afresh."""
    rng = np.random.default_rng(3)
    camera = Camera.for_image(640, 480)
    stretch = np.array([0.12, 0.05])

    def patient(eyes_deg) -> AvatarParams:
        return AvatarParams(rodrigues(rng.normal(0.0, 0.1, 3)), np.array([rng.normal(0, 15), rng.normal(0, 15), 500.0]),
                            np.zeros(face.n_expression), np.zeros(8), np.radians(eyes_deg), fissure=stretch)

    def fitted(truth: AvatarParams) -> AvatarParams:   # the pose as the fit finds it, the eyes generic
        return AvatarParams(truth.rotation, truth.translation, truth.expression, np.zeros(8), np.zeros((2, 2)))

    for _ in range(60):
        truth = patient(rng.uniform(-8, 8, (2, 2)))
        transfer.apply(fitted(truth), camera, tuple(read_eye(o) for o in geometry.outlines(truth, camera)))
    learnt = transfer.apply(neutral(face), camera, (None, None)).fissure
    assert learnt == pytest.approx(stretch, abs=0.01)

    for squint in ([[-20.0, 0.0], [5.0, 0.0]], [[25.0, 5.0], [35.0, 5.0]]):   # exo 25 deg; eso 10 deg on a side gaze
        truth = patient(squint)
        seen = geometry.outlines(truth, camera)
        drawn = geometry.outlines(transfer.apply(fitted(truth), camera, tuple(read_eye(o) for o in seen)), camera)
        a_seen, a_drawn = [eye_angles(o)[0] for o in seen], [eye_angles(o)[0] for o in drawn]
        assert a_drawn == pytest.approx(a_seen, abs=0.3)   # degrees
        assert prism_dioptres(a_drawn[0] - a_drawn[1]) == pytest.approx(prism_dioptres(a_seen[0] - a_seen[1]), abs=1.0)
        turned = [read_eye(o) for o in seen]
        assert max(abs(r.place_h - 0.5) for r in turned) > IRIS_CENTRAL
    assert transfer.apply(neutral(face), camera, (None, None)).fissure == pytest.approx(learnt, abs=0.005)

    transfer.reset()
    assert np.all(transfer.apply(neutral(face), camera, (None, None)).fissure == 0.0)


@pytest.fixture(scope="module")
def big_render(face):
    """Render at 1600x1200 with the face 300 mm away: about 5 px to the millimetre at the eyes."""
    camera = Camera.for_image(1600, 1200)
    renderer = AvatarRenderer(
        1600, 1200, face.topology(),
        eyeball_radius=EYEBALL_RADIUS_MM, iris_radius=IRIS_RADIUS_MM, pupil_radius=PUPIL_RADIUS_MM,
    )

    def render(params: AvatarParams) -> np.ndarray:
        vertices, eyes = avatar_pose(face, params)
        return renderer.render(camera, vertices, eyes)

    yield camera, render
    renderer.release()


def _column_through_iris(geometry, params, camera, eye):
    outline = geometry.outlines(params, camera)[eye]
    return outline, int(round(outline.iris_centre[0])), outline.iris_centre[1]


def test_lid_1mm_above_the_limbus_is_drawn_1mm_above_it(face, geometry, transfer, big_render):
    """MRD1 = half an iris + 1 mm: the drawn lid clears the limbus by 1 mm (11.7 mm iris),
    and the frame shows that band of sclera above the iris, and none with the lid at the limbus."""
    camera, render = big_render
    for eye in (0, 1):
        wanted = [readings(0.45, 0.45), readings(0.45, 0.45)]
        wanted[eye] = readings(0.5 + 1.0 / IRIS_MM, 0.45)
        params = transfer.apply(neutral(face, 300.0), camera, tuple(wanted))
        outline, x, y = _column_through_iris(geometry, params, camera, eye)
        origin, a, n, _ = eye_frame(outline.corners)
        s, h = margin_profile(outline, "upper")
        rel = outline.iris_centre - origin
        clearance_px = (rel @ n - outline.iris_radius) - np.interp(rel @ a, s, h)
        px_per_mm = 2 * outline.iris_radius / IRIS_MM
        assert clearance_px / px_per_mm == pytest.approx(1.0, abs=0.03)
        image = render(params)
        assert sclera_above_iris(image, x, y, outline.iris_radius) / px_per_mm == pytest.approx(1.0, abs=0.3)
        # The other eye's lid sits on the limbus (MRD1 under half an iris): no sclera above it.
        other, x2, y2 = _column_through_iris(geometry, params, camera, 1 - eye)
        assert sclera_above_iris(image, x2, y2, other.iris_radius) == 0


def sclera_above_iris(image: np.ndarray, x: int, y: float, radius: float) -> int:
    """Rows of the run of sclera pixels in column x that ends at the limbus's top (within
    3 rows of y - radius, which leaves room for the limbus's dark edge); 0 if none does."""
    sclera = is_sclera(image[:, x][:, None])[:, 0]
    limbus_top = int(round(y - radius))
    for bottom in range(limbus_top + 3, limbus_top - 4, -1):
        if sclera[bottom]:
            rows = 0
            while sclera[bottom - rows]:
                rows += 1
            return rows
    return 0


def test_narrowed_eye_is_never_drawn_shut(face, geometry, transfer):
    """A narrowed eye read just open (MRD at the iris centre alone would close the lids
    further along the eye) is drawn at least MIN_OPEN_DRAWN open; a shut one is drawn shut."""
    camera = Camera.for_image(640, 480)
    narrowed = EyeReadings(0.02, 0.02, 0.5, 0.0, opening=SHUT_OPENING + 0.005, shut=False)
    got = [read_eye(o) for o in geometry.outlines(transfer.apply(neutral(face), camera, (narrowed, SHUT)), camera)]
    assert not got[0].shut and got[0].opening >= MIN_OPEN_DRAWN - 1e-3
    assert got[1].shut and got[1].opening < 1e-6


def test_an_iris_read_beyond_the_corner_keeps_its_last_place_and_the_lids_their_middle(face, geometry, transfer):
    """An iris read beyond a corner is a misread (p02 frame 461: place 1.20, MRD1 -0.22,
    which drew the iris hidden under a lowered lid): the eye keeps its last well-placed
    rotation, and each lid is drawn at its read height at the fissure's middle; its
    MRDs, measured from the misread iris, are not used."""
    camera = Camera.for_image(640, 480)
    seen = EyeReadings(0.3, 0.45, 0.8, 0.0, opening=0.45, shut=False, upper_mid=0.55, lower_mid=0.6)
    misread = EyeReadings(-0.22, 0.22, 1.2, 0.0, opening=0.45, shut=False, upper_mid=0.55, lower_mid=0.6)
    before = transfer.apply(neutral(face), camera, (seen, seen))
    after = transfer.apply(neutral(face), camera, (misread, seen))
    assert np.allclose(after.eyes, before.eyes)
    drawn = read_eye(geometry.outlines(after, camera)[0])
    assert drawn.upper_mid == pytest.approx(0.55, abs=0.01) and drawn.lower_mid == pytest.approx(0.6, abs=0.01)
    assert drawn.mrd1 > 0.2   # the iris is not hidden under the lid
    # With no well-placed frame before it, the eye keeps its fitted rotation.
    start = neutral(face)
    start.eyes[:] = 0.1
    first = EyeTransfer(geometry).apply(start, camera, (misread, misread))
    assert np.allclose(first.eyes, start.eyes)


def test_strong_retraction_is_drawn_as_its_pixels_show_it(face, geometry, transfer, big_render):
    """Lid retraction up to MRD1 0.85 / MRD2 0.75 iris diameters: the rendered pixels show
    the lids where the drawn geometry puts them (the skin a retracting lid pushes does not
    fold over the opening), within 1.5 px at about 5 px to the millimetre."""
    from dmask_rt.evaluate.avatar_pixels import read_pixels

    camera, render = big_render
    wanted = (readings(0.85, 0.4, 0.45, -0.05), readings(0.4, 0.75, 0.55, -0.05))
    params = transfer.apply(neutral(face, 300.0), camera, wanted)
    image = render(params)
    for w, outline in zip(wanted, geometry.outlines(params, camera)):
        drawn = read_eye(outline)
        assert drawn.mrd1 == pytest.approx(w.mrd1, abs=0.005) and drawn.mrd2 == pytest.approx(w.mrd2, abs=0.005)
        seen = read_pixels(image, outline).readings
        px = 2 * outline.iris_radius
        assert abs(seen.mrd1 - drawn.mrd1) * px < 1.5 and abs(seen.mrd2 - drawn.mrd2) * px < 1.5


def test_unreadable_eyes_stay_as_fitted(face, geometry, transfer):
    """Readings that are not numbers (a degenerate outline) leave that eye as fitted, and a
    limbus of radius 0 reads without raising."""
    from dmask_rt.track.eye_outline import EyeOutline

    camera = Camera.for_image(640, 480)
    start = neutral(face)
    start.eyes[:] = 0.1
    broken = EyeReadings(np.nan, 0.4, 0.5, 0.0, opening=0.3, shut=False)
    out = transfer.apply(start, camera, (broken, readings(0.4, 0.4)))
    assert np.allclose(out.eyes[0], start.eyes[0]) and np.allclose(out.lids[:4], start.lids[:4])
    assert np.all(np.isfinite(out.lids)) and np.all(np.isfinite(out.eyes))
    flat = EyeOutline(np.array([[0.0, 0.0], [30.0, 0.0]]), np.array([[15.0, -5.0]]), np.array([[15.0, 5.0]]),
                      np.array([15.0, 0.0]), 0.0)
    assert not read_eye(flat).shut
