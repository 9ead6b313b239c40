"""Transfer of the patient's eyes to the avatar in clinical units.

The fit places the generic face by the patient's landmarks, but a doctor reads an eye
by ratios: how far the lids sit from the iris centre in iris diameters (MRD1, MRD2),
and where the iris sits between the eye corners as a fraction of the fissure. The
generic eye has its own proportions (its fissure is 2.5 iris diameters wide, the
patient's may be 2.2 or 2.9), so the same millimetres would read differently on it.
This step therefore sets each avatar eye's rotation and lid closures so that the eye
it draws (`model/drawn_eye.py`) reads, by `track/eye_outline.read_eye`, as the
patient's eye did:

    theta, phi   solve  place(drawn(theta, phi)) = place_patient   (Newton, 2x2)
    c_upper      solve  h_p - U(s_p; c_upper) = MRD1_patient * D_drawn   (secant)
    c_lower      solve  L(s_p; c_lower) - h_p = MRD2_patient * D_drawn

with (s_p, h_p) the drawn iris centre in the eye's corner frame and D_drawn the drawn
iris diameter; the corners never move with these parameters, so the three solves are
independent once the rotation is set. A shut eye (its widest lid gap under
`eye_outline.SHUT_OPENING` of the width) is drawn shut: the upper lid meets the lower
one along the whole margin (closures summing to one, no shape term), which leaves the
eyeball no pixel. While an eye is nearly shut (opening under PLACE_MIN_OPENING) its
rotation stays the fit's, which holds the last well-seen one while the lids hide the iris. Retraction needs no special case: a lid above its template
position is a negative closure.

Both eyes are solved independently, so a squint stays a squint. The lid shape terms
(where along the eye the lid peaks) are kept from the fit.
"""
from __future__ import annotations

import math

import numpy as np

from ..model.camera import Camera
from ..model.drawn_eye import EyeGeometry
from ..model.eyeball import IRIS_DEPTH_MM, IRIS_RADIUS_MM
from ..model.params import AvatarParams
from ..track.eye_outline import EyeReadings, eye_frame

#: Reach of the solved rotation (radians): beyond what eyes do, short of the eyeball edge-on.
MAX_HORIZONTAL = math.radians(65.0)
MAX_VERTICAL = math.radians(50.0)
#: Closure range: a lid may retract up to twice the template's opening.
MIN_CLOSURE = -2.0
#: Below this opening (fissure widths) too little iris shows to place it: the fit's
#: rotation, which holds the last well-seen one, is kept.
PLACE_MIN_OPENING = 0.1
_LIMITS = np.array([MAX_HORIZONTAL, MAX_VERTICAL])
_NEWTON_STEPS = 5
_DIFF = 1e-3


class EyeTransfer:
    """Solves the avatar's eye parameters from the patient's eye readings (module docstring)."""

    def __init__(self, geometry: EyeGeometry) -> None:
        self._geometry = geometry

    def apply(
        self, params: AvatarParams, camera: Camera, readings: tuple[EyeReadings | None, EyeReadings | None]
    ) -> AvatarParams:
        """`params` with each read eye's rotation and lid closures replaced; None leaves an eye as fitted."""
        out = params.copy()
        rot, t = out.rotation, out.translation
        for e, reading in enumerate(readings):
            if reading is None:
                continue
            upper, lower = 4 * e, 4 * e + 2   # closure indices; shape terms follow each
            if reading.shut:
                out.lids[lower] = float(np.clip(out.lids[lower], -0.2, 0.4))
                out.lids[upper] = 1.0 - out.lids[lower]
                out.lids[upper + 1] = out.lids[lower + 1] = 0.0
                continue
            verts = self._geometry.head_vertices(out.expression, out.lids)[e] @ rot.T + t
            corners = camera.project(verts[:2])
            origin, a, n, width = eye_frame(corners)
            lateral, medial = (corners - origin) @ a
            centre = rot @ self._geometry.eye_centres[e] + t

            def iris_px(angles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                """(k, 2) pixels relative to the eye frame's origin, (k,) depths, for (k, 2) angles."""
                th, ph = angles[:, 0], angles[:, 1]
                d = np.stack([np.sin(th) * np.cos(ph), -np.sin(ph), -np.cos(th) * np.cos(ph)], axis=1)
                x = centre + IRIS_DEPTH_MM * d @ rot.T
                return camera.project(x) - origin, x[:, 2]

            target = np.array([reading.place_h, reading.place_v])
            angles = out.eyes[e].copy()
            probes = np.vstack([np.zeros(2), np.eye(2) * _DIFF])
            for _ in range(_NEWTON_STEPS if reading.opening >= PLACE_MIN_OPENING else 0):
                rel, _ = iris_px(angles + probes)
                places = np.column_stack([(rel @ a - lateral) / (medial - lateral), (rel @ n) / width])
                jac = (places[1:] - places[0]).T / _DIFF
                try:
                    step = np.linalg.solve(jac, target - places[0])
                except np.linalg.LinAlgError:
                    break
                angles = np.clip(angles + step, -_LIMITS, _LIMITS)
                if np.all(np.abs(step) < 1e-4):
                    break
            out.eyes[e] = angles

            rel, depth = iris_px(angles[None])
            s_p, h_p = float(rel[0] @ a), float(rel[0] @ n)
            diameter = 2.0 * camera.fx * IRIS_RADIUS_MM / float(depth[0])
            for index, chain, goal in (
                (upper, slice(2, 9), h_p - reading.mrd1 * diameter),
                (lower, slice(9, 16), h_p + reading.mrd2 * diameter),
            ):
                field = self._geometry.lids[index].reshape(2, -1, 3)[e][chain] @ rot.T
                out.lids[index] = _solve_closure(
                    camera, verts[chain], field, float(out.lids[index]), corners, origin, a, n, s_p, goal
                )
            # Lids may meet but not cross.
            out.lids[upper] = min(out.lids[upper], 1.0 - out.lids[lower])
        return out


def _solve_closure(
    camera: Camera, chain: np.ndarray, field: np.ndarray, c0: float,
    corners: np.ndarray, origin: np.ndarray, a: np.ndarray, n: np.ndarray, s_p: float, goal: float,
) -> float:
    """The closure c at which the drawn margin (chain + (c - c0) field, camera frame) has
    height `goal` at s_p in the eye frame: Newton steps on a finite-difference slope."""
    if not np.any(field):
        return c0

    def height(c: float) -> float:
        px = camera.project(chain + (c - c0) * field)
        pts = np.concatenate([corners[:1], px, corners[1:]]) - origin
        s, h = pts @ a, pts @ n
        order = np.argsort(s)
        return float(np.interp(s_p, s[order], h[order]))

    c, h = c0, height(c0)
    for _ in range(3):
        slope = (height(c + 0.05) - h) / 0.05
        if abs(slope) < 1e-9:
            break
        c = float(np.clip(c + (goal - h) / slope, MIN_CLOSURE, 1.0))
        h = height(c)
        if abs(h - goal) < 0.01:
            break
    return c
