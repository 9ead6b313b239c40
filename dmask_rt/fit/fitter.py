"""Frame-to-frame fitting of the generic face to tracked landmarks.

Each frame starts from the previous frame's fit (warm start), so a few Gauss-Newton
steps suffice; after a loss of track it starts cold from a frontal pose placed by the
eyes. The patient's own face shape is learned on the way (own_shape.py) so that it is
not mistaken for expression or pose.

The fit itself is not smoothed over time. What is shown and reported steadies the head
pose and expression afterwards, each frame moving a gain g = 1 / (1 + tau) of the way
from the last shown value to the new fit (an exponential average; for the rotation,
along the geodesic):

    R_shown = exp(g log(R_fit R_shown_prev^T)) R_shown_prev,
    t_shown = t_shown_prev + g (t_fit - t_shown_prev),   likewise the expression.

Eyelids and eye rotations are never smoothed: blinks take 3-5 frames and nystagmus
beats at up to several hertz. Nor are they fitted against a smoothed head: a pose that
lags a moving head would leave the eyes to make up the difference, and they would
swing with the head (measured on p03, whose head sways at 1.1 Hz: his eye angles
swung with an SD of 6.8-7.6 degrees when the fit itself carried a temporal prior on
the pose, 2.6-3.3 degrees without it, and 0.9-1.0 degrees while his head is still).
The eye angles are relative to the head, so they apply to the shown head unchanged.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..model.camera import Camera
from ..model.drawn_eye import EyeGeometry
from ..model.eyeball import IRIS_DEPTH_MM
from ..model.generic_face import GenericFace
from ..model.mesh_indices import EYE_CORNERS, IRIS_CENTRE, LOWER_LID, UPPER_LID
from ..model.params import AvatarParams
from ..model.projection import project_landmarks
from ..track.eye_outline import read_eye
from ..track.landmarks import FaceLandmarks
from .eye_transfer import EyeTransfer
from .gauss_newton import N_EYE, N_POSE, gauss_newton, rodrigues, rotation_log
from .own_shape import OwnShape


@dataclass(frozen=True)
class FitConfig:
    cold_iterations: int = 15
    warm_iterations: int = 3
    #: Shape priors, per unit^2 against residuals in mm^2 summed over the landmarks.
    expression_prior: float = 0.3
    lid_prior: float = 0.05
    #: The lids' shape terms (model/eyelid.py) are held at zero: the eye transfer sets them
    #: from the clinical readings. Fitted to the landmark models' lid contours, which keep a
    #: centred eye's shape over a turned iris, they traded off against the eye rotation
    #: (fitted alone, p02's right eye read a 2 Hz "nystagmus" at 11-13 s).
    lid_shape_prior: float = 100.0
    eye_prior: float = 0.01
    #: A closed eye shows no iris: its rotation is then held at the last seen value.
    closed_eye_hold: float = 1e4
    #: Smoothing of the shown pose and expression: each frame moves 1 / (1 + tau) of
    #: the way to the new fit (0 = none).
    pose_tau: float = 0.5
    expression_tau: float = 0.5
    #: Frames over which the patient's own face shape is averaged (own_shape.py).
    own_shape_frames: int = 30
    #: Landmark weights: lid margins, eye corners and irises carry the clinical signal.
    lid_weight: float = 2.0
    iris_weight: float = 3.0
    #: Openness (lid gap / eye width) below which the iris is not trusted at all, and
    #: the span above it over which trust ramps to full.
    iris_trust_from: float = 0.04
    iris_trust_ramp: float = 0.06


def eye_openness(points: np.ndarray) -> np.ndarray:
    """(2,) mean gap between facing lid vertices divided by the corner-to-corner width."""
    out = np.empty(2)
    for e in range(2):
        gap = np.linalg.norm(points[UPPER_LID[e]] - points[LOWER_LID[e]], axis=1).mean()
        width = np.linalg.norm(points[EYE_CORNERS[e, 0]] - points[EYE_CORNERS[e, 1]])
        out[e] = gap / max(width, 1e-6)
    return out


class FaceFitter:
    """Fits `GenericFace` parameters to one face's landmarks, frame after frame."""

    def __init__(self, face: GenericFace, config: FitConfig = FitConfig()) -> None:
        self.face = face
        self.config = config
        self._basis = np.ascontiguousarray(face.basis)
        k_e, k = face.n_expression, self._basis.shape[0]
        self._n = N_POSE + k + N_EYE
        self._weights = np.ones(len(face.fit_indices))
        eye_vertices = np.concatenate([UPPER_LID.ravel(), LOWER_LID.ravel(), EYE_CORNERS.ravel()])
        self._weights[np.isin(face.fit_indices, eye_vertices)] = config.lid_weight
        self._prior_w = np.zeros(self._n)
        self._prior_w[N_POSE : N_POSE + k_e] = config.expression_prior
        self._prior_w[N_POSE + k_e : N_POSE + k] = config.lid_prior
        self._prior_w[N_POSE + k_e + 1 : N_POSE + k : 2] = config.lid_shape_prior
        self._iod_mm = float(np.linalg.norm(face.eye_centres[1] - face.eye_centres[0]))
        self._own_shape = OwnShape(config.own_shape_frames)
        self._previous: AvatarParams | None = None  # the last fit, unsmoothed: the warm start
        self._shown: AvatarParams | None = None     # the last result, pose and expression smoothed

    def reset(self) -> None:
        """Forget the previous frame and the face: the next fit starts cold."""
        self._previous = self._shown = None
        self._own_shape.reset()

    def fit(self, landmarks: FaceLandmarks, camera: Camera) -> AvatarParams:
        """Parameters whose projection best matches `landmarks` (warm-started)."""
        cfg, k_e = self.config, self.face.n_expression
        obs = np.ascontiguousarray(landmarks.points, dtype=np.float64)
        iris_obs = obs[list(IRIS_CENTRE)]
        trust = np.clip((eye_openness(obs) - cfg.iris_trust_from) / cfg.iris_trust_ramp, 0.0, 1.0)

        cold = self._previous is None
        state = self._cold_start(iris_obs, camera) if cold else self._previous.copy()
        beta = np.concatenate([state.expression, state.lids])
        eyes = state.eyes.ravel().copy()
        # Eyes: a weak pull toward the last rotation, strong while the lids hide the iris.
        prior_m = np.zeros(self._n)
        prior_m[-N_EYE:] = eyes
        prior_w = self._prior_w.copy()
        prior_w[-N_EYE:] = cfg.eye_prior + (0.0 if cold else cfg.closed_eye_hold * (1.0 - np.repeat(trust, 2)))

        own = self._own_shape
        template = self.face.mean + own.offset
        rotation = np.ascontiguousarray(state.rotation)
        translation = state.translation.copy()
        rms = gauss_newton(
            template, self._basis, self.face.fit_indices, self._weights,
            self.face.eye_centres + own.eye_shift(), IRIS_DEPTH_MM, cfg.iris_weight * trust, obs, iris_obs,
            translation[2] / camera.fx, camera.fx, camera.fy, camera.cx, camera.cy,
            rotation, translation, np.zeros(3), beta, eyes, prior_w, prior_m,
            cfg.cold_iterations if cold else cfg.warm_iterations,
        )
        if not (np.all(np.isfinite(beta)) and np.all(np.isfinite(translation)) and translation[2] > 0):
            raise FitDiverged("the fit left the valid range (non-finite or behind the camera)")
        fitted = AvatarParams(
            rotation, translation, beta[:k_e].copy(), beta[k_e:].copy(), eyes.reshape(2, 2),
            float(landmarks.confidence), float(rms),
        )
        posed = (template + np.tensordot(beta, self._basis, axes=1)) @ rotation.T + translation
        own.update(self.face.mean, posed, obs, rotation, translation, camera)
        self._previous = fitted
        self._shown = fitted.copy() if self._shown is None else self._steadied(fitted, self._shown)
        return self._shown.copy()

    def _steadied(self, fitted: AvatarParams, shown: AvatarParams) -> AvatarParams:
        """`fitted` with its pose and expression moved only part of the way from `shown` (module docstring)."""
        g_pose = 1.0 / (1.0 + self.config.pose_tau)
        g_expression = 1.0 / (1.0 + self.config.expression_tau)
        turn = rotation_log(np.ascontiguousarray(fitted.rotation @ shown.rotation.T))
        result = fitted.copy()
        result.rotation = rodrigues(g_pose * turn) @ shown.rotation
        result.translation = shown.translation + g_pose * (fitted.translation - shown.translation)
        result.expression = shown.expression + g_expression * (fitted.expression - shown.expression)
        return result

    def _cold_start(self, iris_obs: np.ndarray, camera: Camera) -> AvatarParams:
        """Frontal pose, rolled to the eye line, at the distance where the eyes span their pixels."""
        left_to_right = iris_obs[1] - iris_obs[0]
        iod_px = max(float(np.linalg.norm(left_to_right)), 1.0)
        z = camera.fx * self._iod_mm / iod_px
        mid = iris_obs.mean(axis=0)
        translation = np.array([(mid[0] - camera.cx) * z / camera.fx, (mid[1] - camera.cy) * z / camera.fy, z])
        roll = math.atan2(left_to_right[1], left_to_right[0])
        return AvatarParams(
            rodrigues(np.array([0.0, 0.0, roll])), translation,
            np.zeros(self.face.n_expression), np.zeros(self.face.lids.shape[0]), np.zeros((2, 2)),
        )


class FitDiverged(RuntimeError):
    """The fit produced parameters that cannot describe a face in front of the camera."""


def warm_up(face: GenericFace) -> None:
    """Compile the fit's Numba kernels now (or load them from Numba's on-disk cache).

    A fresh install compiles for several seconds on its first fit; `dmask setup` calls
    this so that no patient's first seconds are spent on it. Fits a cold and a warm
    frame of the template's own projection and transfers its eyes, which runs every kernel.
    """
    camera = Camera.for_image(640, 480)
    params = AvatarParams(
        np.eye(3), np.array([0.0, 0.0, 500.0]), np.zeros(face.n_expression), np.zeros(face.lids.shape[0]), np.zeros((2, 2)),
    )
    points = project_landmarks(face, params, camera).astype(np.float32)
    landmarks = FaceLandmarks(points, np.zeros(len(points), np.float32), 1.0, False, np.zeros((2, 71, 2), np.float32))
    fitter = FaceFitter(face)
    for _ in range(2):
        fitted = fitter.fit(landmarks, camera)
    geometry = EyeGeometry(face)
    EyeTransfer(geometry).apply(fitted, camera, tuple(read_eye(o) for o in geometry.outlines(params, camera)))
