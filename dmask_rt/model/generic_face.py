"""The generic face: one template shape for every patient, plus the shapes it may move by.

    V(beta_e, beta_l, f) = M + sum_k beta_e,k E_k + sum_j beta_l,j L_j + sum_e f_e F_e

M is the mean of many people's tracked 3D landmarks (`build_generic_face.py`), so the
rendered face carries no patient's face shape. E_k are expression modes learned from
how each person's face moved around their OWN mean, so they hold motion (mouth, brows,
cheeks) and not the differences between people; they are scaled to one standard
deviation. L_j are the eyelid shapes of `eyelid.py` and F_e each eye's fissure stretch
(same module). The eyeballs sit at fixed points C_e of the head (`eyeball.py`).

The fit adds to M the patient's own shape, learned during the session
(`fit/own_shape.py`), so that it does not leak into expression and pose; the rendered
face is V above, without it, for everyone.

The arrays come from `data/generic_face.npz`, which the build script writes; the lid
and fissure shapes are derived from M at load time, so they always match it.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from .topology import FaceTopology
from .eyelid import fissure_stretches, lid_blendshapes
from .mesh_indices import BROWS, MOUTH_RING, eye_rings

DATA_FILE = "generic_face.npz"
#: Expression modes kept by the build; parameter names depend on it.
N_EXPRESSION = 10


@dataclass(frozen=True)
class GenericFace:
    mean: np.ndarray         # (N, 3) mm, head frame: origin between the eyes, x right, y down, z into the scene
    expression: np.ndarray   # (K, N, 3) mm per standard deviation
    lids: np.ndarray         # (8, N, 3) eyelid.LID_SHAPE_NAMES
    fissures: np.ndarray     # (2, N, 3) eyelid.fissure_stretches, per eye
    eye_centres: np.ndarray  # (2, 3) eyeball centres, mm
    triangles: np.ndarray    # (M, 3) int32
    fit_indices: np.ndarray  # (F,) int32: vertices whose landmarks the fit uses

    @property
    def basis(self) -> np.ndarray:
        """(K + 8, N, 3): expression shapes then lid shapes, the fit's linear basis."""
        return np.concatenate([self.expression, self.lids])

    @property
    def n_expression(self) -> int:
        return self.expression.shape[0]

    def vertices(self, expression: np.ndarray, lids: np.ndarray, fissure: np.ndarray) -> np.ndarray:
        """V = M + E^T beta_e + L^T beta_l + F^T f, (N, 3) mm in the head frame."""
        return (
            self.mean
            + np.tensordot(expression, self.expression, axes=1)
            + np.tensordot(lids, self.lids, axes=1)
            + np.tensordot(fissure, self.fissures, axes=1)
        )

    def topology(self) -> FaceTopology:
        return FaceTopology(self.triangles, eye_rings(), MOUTH_RING, BROWS)

    @classmethod
    def load(cls, path: Path | None = None) -> "GenericFace":
        """Load the template written by `build_generic_face` (the packaged one by default)."""
        if path is None:
            with resources.as_file(resources.files(__package__) / "data" / DATA_FILE) as p:
                return cls.load(p)
        with np.load(path) as z:
            mean = z["mean"].astype(np.float64)
            eye_centres = z["eye_centres"].astype(np.float64)
            if z["expression"].shape[0] != N_EXPRESSION:
                raise ValueError(f"{path}: expected {N_EXPRESSION} expression modes")
            return cls(
                mean=mean,
                expression=z["expression"].astype(np.float64),
                lids=lid_blendshapes(mean),
                fissures=fissure_stretches(mean, eye_centres),
                eye_centres=eye_centres,
                triangles=z["triangles"].astype(np.int32),
                fit_indices=z["fit_indices"].astype(np.int32),
            )
