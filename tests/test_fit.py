"""Known-answer tests of the fit: landmarks made from known parameters come back out."""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from dmask_rt.fit.fitter import FaceFitter, FitConfig
from dmask_rt.fit.gauss_newton import rodrigues, rotation_log
from dmask_rt.model.camera import Camera
from dmask_rt.model.eyeball import IRIS_DEPTH_MM
from dmask_rt.model.generic_face import GenericFace
from dmask_rt.model.mesh_indices import IRIS_CENTRE
from dmask_rt.model.params import AvatarParams
from dmask_rt.model.projection import project_landmarks
from dmask_rt.track.landmarks import NUM_POINTS, FaceLandmarks

CAMERA = Camera.for_image(640, 480)


@pytest.fixture(scope="module")
def face() -> GenericFace:
    return GenericFace.load()


def landmarks_of(face: GenericFace, p: AvatarParams, noise_px: float = 0.0, seed: int = 0) -> FaceLandmarks:
    """The 478 tracker points an ideal tracker would report for the avatar at `p`."""
    points = project_landmarks(face, p, CAMERA)
    points += np.random.default_rng(seed).normal(scale=noise_px, size=points.shape)
    return FaceLandmarks(
        points.astype(np.float32), np.zeros(NUM_POINTS, np.float32), 0.99, False, np.zeros((2, 71, 2), np.float32)
    )


def random_params(face: GenericFace, rng: np.random.Generator) -> AvatarParams:
    """Plausible consultation poses: head within +-25 deg, 40-70 cm away, eyes within +-25 deg."""
    return AvatarParams(
        rotation=rodrigues(np.radians(rng.uniform(-25, 25, 3)) * np.array([0.6, 1.0, 0.4])),
        translation=np.array([rng.uniform(-60, 60), rng.uniform(-40, 40), rng.uniform(400, 700)]),
        expression=rng.normal(scale=0.7, size=face.n_expression),
        # the lids' shape terms are the eye transfer's, held at zero by the fit (FitConfig.lid_shape_prior)
        lids=np.concatenate([rng.uniform([-0.2, 0.0, -0.1, 0.0], [0.4, 0.0, 0.3, 0.0]) for _ in range(2)]),
        eyes=np.radians(rng.uniform(-25, 25, (2, 2))),
    )


def angle_between(r1: np.ndarray, r2: np.ndarray) -> float:
    return math.degrees(math.acos(np.clip((np.trace(r1.T @ r2) - 1) / 2, -1, 1)))


@pytest.mark.parametrize("seed", range(8))
def test_cold_fit_recovers_known_parameters(face: GenericFace, seed: int) -> None:
    truth = random_params(face, np.random.default_rng(seed))
    fitter = FaceFitter(face)
    got = fitter.fit(landmarks_of(face, truth), CAMERA)
    # Exact landmarks: the only bias comes from the priors. The identity modes (free in
    # the fit, absent from the truth) can trade a little with expression and pose; the
    # tolerances are about 1.5x the largest error seen over these seeds.
    assert angle_between(got.rotation, truth.rotation) < 0.5
    assert np.abs(got.translation - truth.translation).max() < 1.0
    assert np.abs(got.lids - truth.lids).max() < 0.025
    assert np.degrees(np.abs(got.eyes - truth.eyes)).max() < 1.0
    assert np.abs(got.expression - truth.expression).max() < 1.0
    assert got.fit_rms_px < 0.1


def test_without_priors_the_fit_is_exact(face: GenericFace) -> None:
    """The Jacobians and the update are right: with no prior, exact data gives exact answers."""
    cfg = FitConfig(expression_prior=0.0, lid_prior=0.0, lid_shape_prior=0.0, eye_prior=0.0, cold_iterations=30)
    for seed in range(4):
        truth = random_params(face, np.random.default_rng(100 + seed))
        got = FaceFitter(face, cfg).fit(landmarks_of(face, truth), CAMERA)
        assert angle_between(got.rotation, truth.rotation) < 1e-3
        assert np.abs(got.translation - truth.translation).max() < 1e-2
        assert np.abs(got.expression - truth.expression).max() < 1e-3
        assert np.abs(got.lids - truth.lids).max() < 1e-4
        assert np.abs(got.eyes - truth.eyes).max() < 1e-4


def test_fit_with_pixel_noise_stays_close(face: GenericFace) -> None:
    rng = np.random.default_rng(42)
    noise = 0.5
    errors = []
    for seed in range(10):
        truth = random_params(face, rng)
        got = FaceFitter(face).fit(landmarks_of(face, truth, noise_px=noise, seed=seed), CAMERA)
        # One eye angle rests on one iris point: 1 rad moves it rho * f / z pixels, so
        # pixel noise alone gives sigma = noise / (rho f / z) radians per angle.
        sigma_eye = noise / (IRIS_DEPTH_MM * CAMERA.fx / truth.translation[2])
        errors.append(
            (angle_between(got.rotation, truth.rotation),
             np.abs(got.lids - truth.lids).max(),
             np.abs(got.eyes - truth.eyes).max() / sigma_eye)
        )
    rot, lid, eye = np.median(errors, axis=0)
    # Half-pixel noise on a face ~130 px wide: well under a degree of head pose, under a
    # tenth of the lid opening, and eye errors of the size the noise itself implies (the
    # largest of four |N(0, sigma)| has a median of about 1.6 sigma).
    assert rot < 1.0 and lid < 0.1 and eye < 2.5


def test_squint_survives_the_fit(face: GenericFace) -> None:
    """One eye held 10 degrees inward while the other looks ahead stays a 10 degree squint."""
    truth = random_params(face, np.random.default_rng(7))
    truth.eyes[:] = 0.0
    truth.eyes[0, 0] = math.radians(10.0)  # right eye turned toward the nose (image right)
    fitter = FaceFitter(face)
    # A clinician reads a steady squint over seconds of video, not from one frame:
    # per-frame noise (~1.7 deg at this distance, see the noise test) averages out once
    # the fit has settled on the face's shape (identity_tau frames).
    deviations = [
        math.degrees(np.subtract(*fitter.fit(landmarks_of(face, truth, noise_px=0.3, seed=i), CAMERA).eyes[:, 0]))
        for i in range(90)
    ]
    assert abs(np.mean(deviations[30:]) - 10.0) < 1.0


def test_nystagmus_survives_temporal_regularisation(face: GenericFace) -> None:
    """A 3 Hz, 2 degree horizontal oscillation of both eyes at 30 fps keeps its amplitude."""
    fps, hz, amp = 30.0, 3.0, math.radians(2.0)
    base = random_params(face, np.random.default_rng(3))
    base.eyes[:] = 0.0
    fitter = FaceFitter(face)
    n = 90
    fitted, truth = [], []
    for i in range(n):
        p = base.copy()
        p.eyes[:, 0] = amp * math.sin(2 * math.pi * hz * i / fps)
        got = fitter.fit(landmarks_of(face, p, noise_px=0.2, seed=i), CAMERA)
        fitted.append(got.eyes[:, 0].mean())
        truth.append(p.eyes[0, 0])
    fitted_a, truth_a = np.array(fitted[15:]), np.array(truth[15:])
    gain = np.dot(fitted_a, truth_a) / np.dot(truth_a, truth_a)  # least-squares amplitude ratio
    assert 0.9 < gain < 1.1
    # No lag: the fitted trace correlates best with the truth at zero shift.
    shifts = [np.dot(np.roll(fitted_a, -s), truth_a) for s in range(-3, 4)]
    assert int(np.argmax(shifts)) - 3 == 0


def test_rotation_log_inverts_rodrigues() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        w = rng.normal(size=3)
        w *= rng.uniform(0.0, 3.0) / np.linalg.norm(w)  # angles up to 3 rad (172 degrees)
        np.testing.assert_allclose(rotation_log(rodrigues(w)), w, atol=1e-7)
    np.testing.assert_array_equal(rotation_log(np.eye(3)), np.zeros(3))


def test_eyes_stay_still_in_a_swaying_head(face: GenericFace) -> None:
    """The head sways (1.1 Hz, yaw +-6 deg, 15 mm sideways) with the eyes still in it, then
    turns 6 deg at once: the shown pose is steadied, but the eyes are fitted against the
    head where it really is."""
    fps, hz = 30.0, 1.1
    base = random_params(face, np.random.default_rng(4))
    base.eyes[:] = 0.0
    fitter = FaceFitter(face)
    eyes, shown = [], []
    turned = rodrigues(np.array([0.0, math.radians(6.0), 0.0])) @ base.rotation
    for i in range(121):
        p = base.copy()
        if i < 90:
            phase = math.sin(2 * math.pi * hz * i / fps)
            p.rotation = rodrigues(np.array([0.0, math.radians(6.0) * phase, 0.0])) @ base.rotation
            p.translation = base.translation + np.array([15.0 * phase, 0.0, 0.0])
        elif i == 120:
            p.rotation = turned
        got = fitter.fit(landmarks_of(face, p, noise_px=0.2, seed=i), CAMERA)
        eyes.append(np.degrees(got.eyes[:, 0]))
        shown.append(got.rotation)
    # Measured: eye angle SD 0.8-0.9 deg over the sway (4.2 and 14.9 deg when the fit
    # carried a temporal prior on the pose it fitted the eyes against).
    assert np.std(np.array(eyes)[30:90], axis=0).max() < 1.5
    assert np.abs(eyes[120]).max() < 1.5
    # After a still second, the jump: the shown head moves 1 / (1 + pose_tau) = 2/3 of the way.
    assert angle_between(shown[119], shown[120]) == pytest.approx(2 / 3 * angle_between(shown[119], turned), rel=0.15)


def test_closed_eye_holds_eye_rotation(face: GenericFace) -> None:
    """With the lids shut the iris point is meaningless: the eye keeps its last rotation."""
    p = random_params(face, np.random.default_rng(11))
    p.lids[:] = 0.0
    p.eyes[:] = np.radians(8.0)
    fitter = FaceFitter(face)
    for _ in range(3):
        last_open = fitter.fit(landmarks_of(face, p), CAMERA).eyes.copy()
    closed = p.copy()
    closed.lids[[0, 4]] = 1.0  # both upper lids down
    lm = landmarks_of(face, closed)
    lm.points[list(IRIS_CENTRE)] += 40.0  # a tracker guessing wildly under a closed lid
    got = fitter.fit(lm, CAMERA)
    assert got.lids[0] > 0.9 and got.lids[4] > 0.9
    assert np.degrees(np.abs(got.eyes - last_open)).max() < 0.05


def test_new_process_loads_compiled_fit_from_cache() -> None:
    """cache=True: a second process reuses the machine code instead of recompiling."""
    code = (
        "import numpy as np\n"
        "from dmask_rt.fit.gauss_newton import gauss_newton\n"
        "from dmask_rt.fit.fitter import FaceFitter\n"
        "from dmask_rt.model.camera import Camera\n"
        "from dmask_rt.model.generic_face import GenericFace\n"
        "from dmask_rt.model.params import AvatarParams\n"
        "from dmask_rt.model.projection import project_landmarks\n"
        "from dmask_rt.track.landmarks import FaceLandmarks\n"
        "f = GenericFace.load(); cam = Camera.for_image(640, 480)\n"
        "p = AvatarParams(np.eye(3), np.array([0, 0, 500.0]), np.zeros(f.n_expression), np.zeros(8), np.zeros((2, 2)))\n"
        "pts = project_landmarks(f, p, cam).astype(np.float32)\n"
        "FaceFitter(f).fit(FaceLandmarks(pts, np.zeros(478, np.float32), 1.0, False, np.zeros((2, 71, 2))), cam)\n"
        "print(len(gauss_newton.stats.cache_hits), len(gauss_newton.stats.cache_misses))\n"
    )
    run = lambda: subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    run()  # compiles and writes the cache if this checkout has none yet
    hits, misses = map(int, run().stdout.split())
    assert hits >= 1 and misses == 0
