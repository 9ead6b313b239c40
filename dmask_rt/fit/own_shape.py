"""The patient's own face shape, learned during a session so the fit can ignore it.

The generic face M is nobody's face, so a patient's landmarks differ from it even at
rest. Left unexplained, that difference would be forced into the expression weights
and the head pose, and the avatar would carry the patient's face shape. The fit
therefore compares the landmarks with M + D, where D is a per-vertex offset: the running
mean, over the last `frames` frames, of where the landmarks put each vertex relative to
M, back-projected at the model's depth:

    X_i  = ((u_i - cx) z_i / fx, (v_i - cy) z_i / fy, z_i)   observed ray at model depth z_i
    T_i  = R^T (X_i - t) - M_i                              observed offset, head frame
    D   <- D + (T - D) / min(n, frames)

Because T includes whatever expression the patient holds on average, D absorbs it too,
and the expression weights describe motion around the patient's own rest face. D is
never rendered and never leaves the fitter; it is forgotten when the track is lost.

The lid margins do not learn freely: how open each eye is, persistent ptosis included,
is clinical information and stays with the lid model. A margin vertex only follows the
eye corners, D_i = (1 - s_i) D_lateral + s_i D_medial with s_i its place along the lid,
so the eye opening sits where and as wide as the patient's while its height and shape
remain the lids' to describe.
"""
from __future__ import annotations

import numpy as np

from ..model.camera import Camera
from ..model.mesh_indices import EYE_CORNERS, LOWER_LID, N_MESH, UPPER_LID


class OwnShape:
    def __init__(self, frames: int) -> None:
        self.frames = frames
        self.offset = np.zeros((N_MESH, 3))
        self.count = 0
        # (7,) place of each margin vertex between the lateral (0) and medial (1) corner.
        self._along = np.arange(1, UPPER_LID.shape[1] + 1) / (UPPER_LID.shape[1] + 1)

    def reset(self) -> None:
        self.offset[:] = 0.0
        self.count = 0

    def eye_shift(self) -> np.ndarray:
        """(2, 3) how far each eyeball moves with the patient's eye corners (their midpoint)."""
        return self.offset[EYE_CORNERS].mean(axis=1)

    def update(
        self,
        template: np.ndarray,
        posed: np.ndarray,
        points: np.ndarray,
        rotation: np.ndarray,
        translation: np.ndarray,
        camera: Camera,
    ) -> None:
        """Fold one frame in: `template` M (N, 3), `posed` the fitted camera-frame vertices."""
        z = posed[:, 2]
        observed = np.column_stack(
            [(points[:N_MESH, 0] - camera.cx) * z / camera.fx, (points[:N_MESH, 1] - camera.cy) * z / camera.fy, z]
        )
        target = (observed - translation) @ rotation - template
        self.count += 1
        self.offset += (target - self.offset) / min(self.count, self.frames)
        for e in range(2):
            lateral, medial = self.offset[EYE_CORNERS[e]]
            along = np.outer(1.0 - self._along, lateral) + np.outer(self._along, medial)
            self.offset[UPPER_LID[e]] = along
            self.offset[LOWER_LID[e]] = along
