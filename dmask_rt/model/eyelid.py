"""The eyelid model: four linear shapes per eye that move the lid margins.

Each lid margin is the chain of seven mesh vertices between the eye corners
(`mesh_indices.UPPER_LID`, `LOWER_LID`); vertex i of the upper lid faces vertex i of
the lower lid. With U_i and L_i their template positions, the shapes are

    upper closure:  dU_i = (L_i - U_i)                  1 = closed onto the lower lid
    upper shape:    dU_i = (L_i - U_i) * (2 s_i - 1)    tilts the lid along the eye
    lower closure:  dL_i = (U_i - L_i)                  1 = raised onto the upper lid
    lower shape:    dL_i = (U_i - L_i) * (2 s_i - 1)

with s_i = (i + 1) / 8 running from the lateral to the medial corner. Closure is
therefore the fraction of the template's opening covered by that lid at each point, so
it reads directly as a blink (upper closure near 1) or a retraction (below 0, the lid
above its template position, as in thyroid eye disease); the shape term makes the
closure vary linearly from one corner to the other and leaves the lid's height at the
fissure's middle alone: a lid whose highest point sits off-centre (lateral flare, the
medial peak of some ptoses, a lid draped over an iris turned into a corner). (A sine
profile, sin(2 pi s), dented the lid at a quarter of the eye when it had to move far.)
Corners stay put: they are canthal tendon attachments, not lid.

Skin next to a margin follows it with a weight falling off linearly with distance d,
w = 1 - d / reach, so a closing lid drags its skin as in life instead of tearing the
mesh, and a retracting one pushes its skin ahead of it: a skin vertex d from the margin
stays outside it while the margin moves less than reach (w > 1 - d / displacement). (A
weight of 0.7 (1 - d / reach)^2, reaching 5 mm below the lower lid, let the skin fold
over the opening from a retraction of about 5 mm upper, 3 mm lower: the drawn lid no
longer showed where it was.)

One more shape per eye sets the fissure's length, so that the drawn eye has the
patient's proportions (fissure width in iris diameters, `fit/eye_transfer.py`): with x_C
the eyeball centre's x, every vertex of the eye's ring (corners and both margins) moves

    fissure stretch:  dV_i = ((x_i - x_C), 0, 0)       1 = a fissure twice as long

with x_i a corner's own x, and for the facing margin vertices U_i, L_i the mean of their
two x (so lids that close onto each other still meet). The iris keeps its place
between the corners at rest, and skin within
_FISSURE_REACH_MM of the ring follows its nearest ring vertex with w = 1 - d / reach.
"""
from __future__ import annotations

import numpy as np

from .mesh_indices import EYE_CORNERS, LOWER_LID, UPPER_LID

N_LID_SHAPES = 8
LID_SHAPE_NAMES = tuple(
    f"lid_{eye}_{lid}_{kind}"
    for eye in ("r", "l")
    for lid in ("upper", "lower")
    for kind in ("closure", "shape")
)
# How far (mm) the skin above / below a margin follows it.
_SKIN_REACH_MM = {"upper": 9.0, "lower": 8.0}
_FISSURE_REACH_MM = 8.0


def lid_blendshapes(mean: np.ndarray) -> np.ndarray:
    """(8, N, 3) displacement fields, ordered as LID_SHAPE_NAMES, for template `mean` (N, 3) mm."""
    n = mean.shape[0]
    shapes = np.zeros((N_LID_SHAPES, n, 3))
    s = np.arange(1, 8) / 8.0
    profile = (2.0 * s - 1.0)[:, None]
    margin = set(np.concatenate([UPPER_LID.ravel(), LOWER_LID.ravel(), EYE_CORNERS.ravel()]).tolist())
    others = np.array([v for v in range(n) if v not in margin])
    for e in range(2):
        upper, lower = mean[UPPER_LID[e]], mean[LOWER_LID[e]]
        for j, (lid, idx, delta) in enumerate(
            (("upper", UPPER_LID[e], lower - upper), ("lower", LOWER_LID[e], upper - lower))
        ):
            closure, shape = shapes[4 * e + 2 * j], shapes[4 * e + 2 * j + 1]
            closure[idx] = delta
            shape[idx] = delta * profile
            _drag_skin(mean, others, idx, lid, (closure, shape))
    return shapes


def _drag_skin(
    mean: np.ndarray, others: np.ndarray, idx: np.ndarray, lid: str, fields: tuple[np.ndarray, ...]
) -> None:
    """Give skin vertices on the outer side of a margin a share of its nearest margin vertex's motion.

    Weight w = 1 - dist / reach for vertices within `reach` mm and on the lid's side
    (above an upper lid, below a lower lid).
    """
    margin_pos = mean[idx]
    d = np.linalg.norm(mean[others][:, None, :] - margin_pos[None, :, :], axis=2)
    nearest = d.argmin(axis=1)
    dist = d[np.arange(len(others)), nearest]
    dy = mean[others, 1] - margin_pos[nearest, 1]
    outside = dy < 0 if lid == "upper" else dy > 0
    reach = _SKIN_REACH_MM[lid]
    sel = outside & (dist < reach)
    w = 1.0 - dist[sel] / reach
    for field in fields:
        field[others[sel]] = w[:, None] * field[idx[nearest[sel]]]


def fissure_stretches(mean: np.ndarray, eye_centres: np.ndarray) -> np.ndarray:
    """(2, N, 3) fissure-stretch displacement fields (module docstring), one per eye."""
    n = mean.shape[0]
    shapes = np.zeros((2, n, 3))
    ring = np.concatenate([EYE_CORNERS, UPPER_LID, LOWER_LID], axis=1)
    others = np.setdiff1d(np.arange(n), ring.ravel())
    for e in range(2):
        idx = ring[e]
        shapes[e, EYE_CORNERS[e], 0] = mean[EYE_CORNERS[e], 0] - eye_centres[e, 0]
        pair_x = (mean[UPPER_LID[e], 0] + mean[LOWER_LID[e], 0]) / 2.0
        shapes[e, UPPER_LID[e], 0] = shapes[e, LOWER_LID[e], 0] = pair_x - eye_centres[e, 0]
        d = np.linalg.norm(mean[others][:, None, :] - mean[idx][None, :, :], axis=2)
        nearest = d.argmin(axis=1)
        w = np.clip(1.0 - d[np.arange(len(others)), nearest] / _FISSURE_REACH_MM, 0.0, None)
        shapes[e, others] = w[:, None] * shapes[e, idx[nearest]]
    return shapes
