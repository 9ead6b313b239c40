"""One frame through the mask: track -> fit -> eye transfer -> render.

`Masker.process` takes a camera frame and returns the avatar frame, the fitted
parameters and the ocular measures derived from them (`measure/`). It fails closed: whenever there is no trustworthy face (none found, low
confidence, a fit that diverged) the output is the placeholder, never input pixels, and
the next face starts a fresh track and a cold fit.

On request (`Masker.closeup_size`, which may change between frames) it also renders an
eye close-up: the same avatar from the same parameters, seen by the frame's camera
magnified onto both eyes (`Camera.closeup`: the eyes' span plus one template eye width
either side), in a second renderer of its own at the close-up's size. It is drawn, not
cropped: at the default 960x360 an iris 11.7 mm across is some 100 px wide whatever
the face's size in the camera frame. Like the avatar it is computed from the fitted
parameters alone.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .fit.eye_transfer import EyeTransfer
from .fit.fitter import FaceFitter, FitConfig, FitDiverged
from .measure.frame import MEASURE_NAMES, frame_measures
from .model.camera import Camera
from .model.drawn_eye import EyeGeometry
from .model.eyeball import EYEBALL_RADIUS_MM, IRIS_RADIUS_MM, PUPIL_RADIUS_MM, eyeball_rotation
from .model.generic_face import N_EXPRESSION, GenericFace
from .model.mesh_indices import EYE_CORNERS
from .model.params import AvatarParams, param_names
from .render.placeholder import placeholder_frame
from .render.renderer import AvatarRenderer, EyeballPose
from .track.eye_outline import EyeOutline, read_eye
from .track.landmarks import FaceLandmarks
from .track.tracker import FaceTracker


@dataclass
class FrameResult:
    image: np.ndarray                 # (h, w, 3) uint8 RGB: the avatar, or the placeholder
    face_found: bool
    params: dict[str, float] | None   # fitted parameters and ocular measures (PARAM_NAMES), None when no face
    timings_ms: dict[str, float] = field(default_factory=dict)  # "track", "fit", "render", "measure" (+ "closeup")
    avatar: AvatarParams | None = None
    #: (right, left) eye outlines the avatar draws (projected geometry): with
    #: Masker(report_drawn=True), when there is a face.
    drawn: tuple[EyeOutline, EyeOutline] | None = None
    #: (h, w, 3) uint8 RGB eye close-up at Masker.closeup_size, when asked for and there
    #: is a face (None otherwise: the caller shows its own placeholder).
    closeup: np.ndarray | None = None


def avatar_pose(face: GenericFace, params: AvatarParams) -> tuple[np.ndarray, tuple[EyeballPose, EyeballPose]]:
    """Camera-frame face vertices X = R V + t and both eyeball poses for `params`."""
    r, t = params.rotation, params.translation
    vertices = face.vertices(params.expression, params.lids, params.fissure) @ r.T + t
    eyes = tuple(
        EyeballPose(center=r @ face.eye_centres[e] + t, rotation=r @ eyeball_rotation(*params.eyes[e]))
        for e in range(2)
    )
    return vertices.astype(np.float32), eyes  # type: ignore[return-value]


class Masker:
    """Turns frames of a patient's face into frames of the generic avatar."""

    #: Per-frame values: the fitted parameters, then the ocular measures derived from them.
    PARAM_NAMES: tuple[str, ...] = param_names(N_EXPRESSION) + MEASURE_NAMES

    def __init__(
        self,
        models_dir: Path | None = None,
        face: GenericFace | None = None,
        min_confidence: float = 0.5,
        fit_config: FitConfig = FitConfig(),
        report_drawn: bool = False,
        closeup_size: tuple[int, int] | None = None,
    ) -> None:
        self.face = face or GenericFace.load()
        self.min_confidence = min_confidence
        self.tracker = FaceTracker(models_dir, min_confidence=min_confidence)
        self.fitter = FaceFitter(self.face, fit_config)
        self._eye_geometry = EyeGeometry(self.face)
        self.transfer = EyeTransfer(self._eye_geometry)
        self.report_drawn = report_drawn  # the evaluation reads them; a consultation need not (0.12 ms)
        #: (width, height) of the eye close-up, or None for none (no cost). May be changed
        #: between frames, from another thread too (one assignment): a doctor looking at it.
        self.closeup_size = closeup_size
        #: The close-up's margin either side of the eyes: the template's widest eye, corner to corner.
        corners = self.face.mean[EYE_CORNERS]  # (eye, lateral/medial, 3)
        self.closeup_margin_mm = float(np.linalg.norm(corners[:, 0] - corners[:, 1], axis=1).max())
        self._renderer: AvatarRenderer | None = None
        self._closeup_renderer: AvatarRenderer | None = None
        self._camera: Camera | None = None

    def process(self, rgb: np.ndarray) -> FrameResult:
        """Mask one RGB frame of any size; the output has the input's size."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB frame, got {rgb.shape} {rgb.dtype}")
        height, width = rgb.shape[:2]
        camera = self._camera_for(width, height)
        t0 = time.perf_counter()
        landmarks = self.tracker.track(rgb)
        t1 = time.perf_counter()
        timings = {"track": (t1 - t0) * 1e3}
        params = self._fit(landmarks, camera)
        t2 = time.perf_counter()
        timings["fit"] = (t2 - t1) * 1e3
        if params is None:
            return FrameResult(placeholder_frame(width, height), False, None, timings)
        vertices, eyes = avatar_pose(self.face, params)
        image = self._renderer_for(width, height).render(camera, vertices, eyes)
        t3 = time.perf_counter()
        timings["render"] = (t3 - t2) * 1e3
        values = {**params.to_dict(), **frame_measures(self.face, params)}
        drawn = self._eye_geometry.outlines(params, camera) if self.report_drawn else None
        t4 = time.perf_counter()
        timings["measure"] = (t4 - t3) * 1e3
        closeup_size = self.closeup_size  # read once: another thread may switch it
        closeup = None
        if closeup_size is not None:
            view = camera.closeup(np.array([e.center for e in eyes]), self.closeup_margin_mm, *closeup_size)
            closeup = self._renderer_for(view.width, view.height, closeup=True).render(view, vertices, eyes)
            timings["closeup"] = (time.perf_counter() - t4) * 1e3
        return FrameResult(image, True, values, timings, params, drawn, closeup)

    def _fit(self, landmarks: FaceLandmarks | None, camera: Camera) -> AvatarParams | None:
        if landmarks is None or landmarks.confidence < self.min_confidence:
            self.fitter.reset()
            self.transfer.reset()
            return None
        try:
            params = self.fitter.fit(landmarks, camera)
        except FitDiverged:
            self.fitter.reset()
            self.transfer.reset()
            self.tracker.reset()
            return None
        if landmarks.eyes is None:
            return params
        return self.transfer.apply(params, camera, (read_eye(landmarks.eyes[0]), read_eye(landmarks.eyes[1])))

    def _camera_for(self, width: int, height: int) -> Camera:
        if self._camera is None or (self._camera.width, self._camera.height) != (width, height):
            # A new size is a new camera: the old fit's depth no longer applies.
            self._camera = Camera.for_image(width, height)
            self.fitter.reset()
        return self._camera

    def _renderer_for(self, width: int, height: int, closeup: bool = False) -> AvatarRenderer:
        """The avatar's renderer, or the close-up's: each with a framebuffer of its own size."""
        renderer = self._closeup_renderer if closeup else self._renderer
        if renderer is None:
            renderer = AvatarRenderer(
                width, height, self.face.topology(),
                eyeball_radius=EYEBALL_RADIUS_MM, iris_radius=IRIS_RADIUS_MM, pupil_radius=PUPIL_RADIUS_MM,
            )
            if closeup:
                self._closeup_renderer = renderer
            else:
                self._renderer = renderer
        elif renderer.size != (width, height):
            renderer.resize(width, height)
        return renderer

    def close(self) -> None:
        for renderer in (self._renderer, self._closeup_renderer):
            if renderer is not None:
                renderer.release()
        self._renderer = self._closeup_renderer = None

    def __enter__(self) -> "Masker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
