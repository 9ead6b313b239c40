"""Transfer of the patient's eyes to the avatar in clinical units.

The fit places the generic face by the patient's landmarks, but a doctor reads an eye
by ratios: how far the lids sit from the iris centre in iris diameters (MRD1, MRD2),
and where the iris sits between the eye corners as a fraction of the fissure. The
generic eye has its own proportions (its fissure is drawn 2.0 iris diameters wide; the
labelled dev-clip eyes 1.9-2.9), so the same millimetres would read differently on it.
This step therefore sets each avatar eye's rotation and lid closures so that the eye
it draws (`model/drawn_eye.py`) reads, by `track/eye_outline.read_eye`, as the
patient's eye did:

    theta, phi   solve  (s_p - W/2) / D_drawn = (place_h - 1/2) (W/D)_patient
                        h_p / D_drawn = place_v (W/D)_patient              (Newton, 2x2)
    c_u, k_u     solve  h_p - U(s_p; c_u, k_u) = MRD1_patient * D_drawn
                        -U(W/2; c_u, k_u) = upper_mid_patient * D_drawn   (Gauss-Newton)
    c_l, k_l     solve  L(s_p; c_l, k_l) - h_p = MRD2_patient * D_drawn
                        L(W/2; c_l, k_l) = lower_mid_patient * D_drawn

with (s_p, h_p) the drawn iris centre in the eye's corner frame (s from the lateral
corner, W the drawn fissure width), D_drawn the drawn iris diameter, c a lid's closure
and k its shape term (`model/eyelid.py`: it tilts the lid along the eye and leaves its
height at the fissure's middle alone; while the iris sits in the middle k has no say in
either height and the fit's stays, SHAPE_DAMPING); the corners never move with these
parameters, so the solves are independent once the rotation is set. Matching MRD at
the iris alone, an iris deep in a corner, where the template lid falls to the corner,
was drawn under a lid raised all along the eye: a retraction the patient does not have.
A shut eye (its widest lid gap under `eye_outline.SHUT_OPENING` of the width) is drawn
shut: the upper lid meets the lower one along the whole margin and laps a little over it
(closures summing to just over one, no shape term), which leaves the eyeball no pixel.
While an eye is nearly shut (opening under PLACE_MIN_OPENING) its rotation stays the
fit's, which holds the last well-seen one while the lids hide the iris. Retraction needs
no special case: a lid above its template position is a negative closure.

Both eyes are solved independently, so a squint stays a squint. Guards: an open eye's
iris read beyond the corners is a misread, not an eye (seen once in the dev clips, p02
frame 461, mid-saccade: place 1.20 and MRD1 -0.22, which drew the iris hidden under a
lowered lid), so neither its place nor the MRDs measured from it are used: the eye keeps
its last well-placed rotation and each lid is drawn by its height at the fissure's
middle alone; retraction stops where the drawn margin still shows where it is
(MIN_CLOSURE); an eye read open is never drawn shut (MIN_OPEN_DRAWN).

The eye's proportions. An iris offset from the fissure's middle, read in fissure widths
(place) and in iris diameters (the eye's angle, `evaluate/clinical.py`), agrees on both
only if the drawn fissure spans as many iris diameters as the patient's; the generic eye
spans 2.03, the dev clips' eyes 2.07-2.32, and drawn at 2.03 an eye turn showed at that
ratio (e.g. 0.92) of the patient's. Each eye's fissure is therefore stretched about its
eyeball's centre (`model/eyelid.fissure_stretches`, weight f_e) to the patient's length,
learnt per stream like the iris radius:

    f_obs = (W / D)_patient / (W / D)_drawn at f = 0,  same pose       (this frame)
    f_e  <- f_e + max(1 / n, STRETCH_RATE) (f_obs - 1 - f_e)           (n: frames learnt)

from open eyes with the iris near the fissure's middle only (`track/eye_refine.IRIS_CENTRAL`:
a turned iris pulls the landmark models' corners), within STRETCH_RANGE. It is one steady number per eye, a
clinical proportion (the horizontal fissure length), and forgotten with the face.
A steady stretch matches each frame's drawn proportion only as nearly as the pose lets
(yaw foreshortens the fissure, not the iris), so the iris is placed by its offsets from
the fissure's middle in iris diameters (what the eye's angle reads), and its place in
fissure widths follows within that mismatch. Without a read proportion (W/D unknown)
the place itself is solved.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..model.camera import Camera
from ..model.drawn_eye import EyeGeometry
from ..model.eyeball import IRIS_DEPTH_MM, IRIS_RADIUS_MM
from ..model.params import AvatarParams
from ..track.eye_outline import SHUT_OPENING, EyeReadings
from ..track.eye_refine import IRIS_CENTRAL

#: Reach of the solved rotation (radians): beyond what eyes do, short of the eyeball edge-on.
#: (The generic globe sits 1.2 mm lateral of its fissure's middle, so an iris read deeper
#: than 0.82 into the inner corner is drawn there at most: turned further to reach it, the
#: avatar's eye angles, which `dmask measure` reads, would swing unequally with the gaze.)
MAX_HORIZONTAL = math.radians(65.0)
MAX_VERTICAL = math.radians(50.0)
#: Retraction limits (closure below 0) of the (upper, lower) lid: as far as the drawn
#: margin still shows where it is (the rendered pixels confirm it; beyond, the skin it
#: pushes ahead folds over the opening): MRD1 about 0.85, MRD2 about 1.0 iris
#: diameters on a frontal generic eye, beyond severe retraction (MRD1 7-9 mm).
MIN_CLOSURE = (-0.9, -1.0)
#: An eye read open is drawn at least this open (widest lid gap / fissure width), so a
#: narrowed eye is never drawn shut: matching MRD at the iris centre alone can close
#: the lids further along the eye.
MIN_OPEN_DRAWN = SHUT_OPENING + 0.01
#: A shut eye's upper lid laps this share of the template opening over the lower one:
#: margins that only coincide let the eyeball through a crack of their seam (seen: 3 px at
#: a lateral corner in the 960x360 close-up).
SHUT_OVERLAP = 0.03
#: Below this opening (fissure widths) too little iris shows to place it: the fit's
#: rotation, which holds the last well-seen one, is kept.
PLACE_MIN_OPENING = 0.1
#: Learning of the fissure stretch (module docstring): the rate once settled and the
#: allowed stretch; the iris must be within IRIS_CENTRAL of the fissure's middle.
STRETCH_RATE = 0.05
STRETCH_RANGE = (-0.2, 0.3)
#: Damping of a lid's shape-term steps, against an error of one iris diameter: with the
#: iris in the middle of the fissure the shape has no say in either height, and stays.
SHAPE_DAMPING = 0.02
#: Weight of the lid's height at the fissure's middle against MRD's at the iris: MRD is
#: the clinical reading and comes first where the drawn eye cannot show both (an iris deep
#: in a corner, where the generic fissure narrows faster than most patients').
MID_WEIGHT = 0.3
#: The shape term's reach (the closure then varies by 0.75 of it either way along the lid):
#: an iris deep in the inner corner (0.84 of the generic fissure) needs 1.6 to draw MRD1
#: and the lid's height at the fissure's middle as read.
MAX_SHAPE = 1.6
_NEWTON_STEPS = 5
_DIFF = 1e-3


class EyeTransfer:
    """Solves the avatar's eye parameters from the patient's eye readings (module docstring)."""

    def __init__(self, geometry: EyeGeometry) -> None:
        self._geometry = geometry
        # Per eye, the (closure, shape) fields of its upper and lower margin (7 vertices each), head frame.
        fields = geometry.lids.reshape(8, 2, -1, 3)
        self._fields = np.stack([np.stack([fields[4 * e: 4 * e + 2, e, 2:9], fields[4 * e + 2: 4 * e + 4, e, 9:16]])
                                 for e in range(2)])   # (2 eyes, 2 lids, 2 kinds, 7, 3)
        self._stretch_fields = geometry.fissures.reshape(2, 2, -1, 3)[[0, 1], [0, 1]]   # (2, 16, 3) own eye
        self.reset()

    def reset(self) -> None:
        """Forget the stream's fissure proportions and eye rotations (a new face may be another person)."""
        self._stretch = np.zeros(2)
        self._learnt = np.zeros(2, dtype=np.int64)
        self._placed: list[np.ndarray | None] = [None, None]   # each eye's last well-placed rotation

    def apply(
        self, params: AvatarParams, camera: Camera, readings: tuple[EyeReadings | None, EyeReadings | None]
    ) -> AvatarParams:
        """`params` with each read eye's rotation, lid closures and fissure stretch replaced;
        None leaves an eye as fitted."""
        out = params.copy()
        rot, t = out.rotation, out.translation
        verts = self._geometry.head_vertices(out.expression, out.lids, np.zeros(2)) @ rot.T + t   # (2, 16, 3)
        for e, reading in enumerate(readings):
            if reading is not None:
                iris_depth = (rot @ self._geometry.eye_centres[e] + t)[2] - IRIS_DEPTH_MM * rot[2, 2]
                self._learn_stretch(e, reading, verts[e], iris_depth, camera)
        out.fissure = self._stretch.copy()
        verts += np.einsum("e,evk->evk", out.fissure, self._stretch_fields @ rot.T)
        cam = np.array([camera.fx, camera.fy, camera.cx, camera.cy])
        for e, reading in enumerate(readings):
            if reading is None:
                continue
            upper, lower = 4 * e, 4 * e + 2   # closure indices; shape terms follow each
            if reading.shut:
                out.lids[lower] = float(np.clip(out.lids[lower], -0.2, 0.4))
                out.lids[upper] = 1.0 + SHUT_OVERLAP - out.lids[lower]
                out.lids[upper + 1] = out.lids[lower + 1] = 0.0
                continue
            # An iris beyond the corners (module docstring); a nearly shut eye's iris is not
            # placed, and its MRDs, summing to its opening, hold where it is read.
            placeable = reading.opening >= PLACE_MIN_OPENING
            misread = placeable and not 0.0 <= reading.place_h <= 1.0
            target = np.array([min(max(reading.place_h, 0.0), 1.0), reading.place_v, reading.mrd1, reading.mrd2,
                               reading.upper_mid, reading.lower_mid])
            if misread:
                target[2:4] = np.nan
            if not np.all(np.isfinite(target[4:] if misread else target[:4])):
                continue  # nothing readable: the eye stays as fitted
            lids = np.array([[out.lids[upper], out.lids[upper + 1]], [out.lids[lower], out.lids[lower + 1]]])
            placed = placeable and not misread
            angles = self._placed[e].copy() if misread and self._placed[e] is not None else out.eyes[e].copy()
            _solve_eye(
                verts[e], self._fields[e] @ rot.T, rot @ self._geometry.eye_centres[e] + t, rot, cam, target,
                reading.width, placed, angles, lids,
            )
            if placed:
                self._placed[e] = angles.copy()
            out.eyes[e] = angles
            # Lids may meet but not cross.
            out.lids[upper], out.lids[lower] = min(lids[0, 0], 1.0 - lids[1, 0]), lids[1, 0]
            out.lids[upper + 1], out.lids[lower + 1] = lids[0, 1], lids[1, 1]
        return out

    def _learn_stretch(self, e: int, reading: EyeReadings, verts: np.ndarray, iris_depth: float,
                       camera: Camera) -> None:
        """One step of eye e's fissure stretch toward this frame's (module docstring)."""
        if reading.shut or not (abs(reading.place_h - 0.5) < IRIS_CENTRAL and np.isfinite(reading.width)):
            return
        corners = camera.project(verts[:2])
        drawn = float(np.linalg.norm(corners[1] - corners[0])) * iris_depth / (2.0 * camera.fx * IRIS_RADIUS_MM)
        observed = min(max(reading.width / drawn - 1.0, STRETCH_RANGE[0]), STRETCH_RANGE[1])
        self._learnt[e] += 1
        self._stretch[e] += max(1.0 / self._learnt[e], STRETCH_RATE) * (observed - self._stretch[e])


@njit(cache=True)
def _project(fx, fy, cx, cy, x, y, z):
    return fx * x / z + cx, fy * y / z + cy


@njit(cache=True)
def _iris(centre, rot, theta, phi, cam, origin, a, n):
    """Drawn iris centre of the eye at (theta, phi) in the eye frame (s, h), and the drawn iris diameter."""
    d0, d1, d2 = math.sin(theta) * math.cos(phi), -math.sin(phi), -math.cos(theta) * math.cos(phi)
    x = centre[0] + IRIS_DEPTH_MM * (rot[0, 0] * d0 + rot[0, 1] * d1 + rot[0, 2] * d2)
    y = centre[1] + IRIS_DEPTH_MM * (rot[1, 0] * d0 + rot[1, 1] * d1 + rot[1, 2] * d2)
    z = centre[2] + IRIS_DEPTH_MM * (rot[2, 0] * d0 + rot[2, 1] * d1 + rot[2, 2] * d2)
    u, v = _project(cam[0], cam[1], cam[2], cam[3], x, y, z)
    du, dv = u - origin[0], v - origin[1]
    return du * a[0] + dv * a[1], du * n[0] + dv * n[1], 2.0 * cam[0] * IRIS_RADIUS_MM / z


@njit(cache=True)
def _moved(chain, fields, dc, dk):
    """A margin's 7 vertices moved by dc of its closure field and dk of its shape field."""
    return chain + dc * fields[0] + dk * fields[1]


@njit(cache=True)
def _margin_height(chain, corners, cam, origin, a, n, s_p):
    """Height h at s_p of the polyline corner, chain (projected), corner."""
    m = chain.shape[0] + 2
    s = np.empty(m)
    h = np.empty(m)
    for k in range(m):
        if k == 0 or k == m - 1:
            u, v = corners[0 if k == 0 else 1]
        else:
            u, v = _project(cam[0], cam[1], cam[2], cam[3], chain[k - 1, 0], chain[k - 1, 1], chain[k - 1, 2])
        du, dv = u - origin[0], v - origin[1]
        s[k] = du * a[0] + dv * a[1]
        h[k] = du * n[0] + dv * n[1]
    order = np.argsort(s)
    return np.interp(s_p, s[order], h[order])


@njit(cache=True)
def _solve_lid(chain, fields, lid, start, goals, at, with_mid, min_closure, corners, cam, origin, a, n, diameter):
    """Closure and shape (lid[0], lid[1], in place; closure within [min_closure, 1]) of one
    margin whose height at s = at[0] should be goals[0] and, when `with_mid`, at at[1]
    goals[1]: Gauss-Newton on the errors in iris diameters, the shape's steps damped
    (SHAPE_DAMPING)."""
    for _ in range(8):
        r = np.zeros(3)
        jac = np.zeros((3, 2))
        for k in range(3):
            dc = lid[0] - start[0] + (_DIFF if k == 1 else 0.0)
            dk = lid[1] - start[1] + (_DIFF if k == 2 else 0.0)
            moved = _moved(chain, fields, dc, dk)
            for q in range(2 if with_mid else 1):
                h = (_margin_height(moved, corners, cam, origin, a, n, at[q]) - goals[q]) / diameter
                h *= 1.0 if q == 0 else MID_WEIGHT
                if k == 0:
                    r[q] = h
                else:
                    jac[q, k - 1] = (h - r[q]) / _DIFF
        jac[2, 1] = SHAPE_DAMPING   # r[2] = 0: damps the shape's steps, not where it ends
        # The least-squares step, (J^T J) step = -J^T r, solved in closed form (2x2).
        a00 = a01 = a11 = b0 = b1 = 0.0
        for q in range(3):
            a00 += jac[q, 0] * jac[q, 0]
            a01 += jac[q, 0] * jac[q, 1]
            a11 += jac[q, 1] * jac[q, 1]
            b0 -= jac[q, 0] * r[q]
            b1 -= jac[q, 1] * r[q]
        det = a00 * a11 - a01 * a01
        if abs(det) < 1e-12:
            break
        step = np.array([(a11 * b0 - a01 * b1) / det, (a00 * b1 - a01 * b0) / det])
        shape = min(max(lid[1] + step[1], -MAX_SHAPE), MAX_SHAPE)
        if shape != lid[1] + step[1] and abs(jac[0, 0]) > 1e-9:
            # the shape at its reach: the closure for MRD alone, which comes first
            step[1] = shape - lid[1]
            step[0] = -(r[0] + jac[0, 1] * step[1]) / jac[0, 0]
        lid[0] = min(max(lid[0] + step[0], min_closure), 1.0)
        lid[1] = shape
        if abs(step[0]) < 1e-4 and abs(step[1]) < 1e-4:
            break


@njit(cache=True)
def _solve_eye(verts, fields, centre, rot, cam, target, ruler, place, angles, lids):
    """Solve one eye in place: `angles` (theta, phi) for target[:2] (place) when `place`,
    by its offsets from the fissure's middle in iris diameters when `ruler` (the patient's
    W/D) is finite,
    then `lids` ((upper closure, shape), (lower closure, shape)) for target[2:] (MRD1,
    MRD2, upper_mid, lower_mid; the mids may be NaN: closures alone then; the MRDs may be
    NaN: the mids alone). verts (16, 3):
    camera-frame corners, upper and lower margin; fields (2 lids, 2 kinds, 7, 3), camera frame."""
    corners = np.empty((2, 2))
    for k in range(2):
        corners[k, 0], corners[k, 1] = _project(cam[0], cam[1], cam[2], cam[3], verts[k, 0], verts[k, 1], verts[k, 2])
    left = 0 if corners[0, 0] <= corners[1, 0] else 1
    origin = corners[left].copy()
    axis = corners[1 - left] - origin
    width = math.sqrt(axis[0] ** 2 + axis[1] ** 2)
    a = axis / max(width, 1e-9)
    n = np.array([-a[1], a[0]])
    lateral = (corners[0, 0] - origin[0]) * a[0] + (corners[0, 1] - origin[1]) * a[1]
    medial = (corners[1, 0] - origin[0]) * a[0] + (corners[1, 1] - origin[1]) * a[1]
    span = medial - lateral
    limits = (MAX_HORIZONTAL, MAX_VERTICAL)
    offsets = math.isfinite(ruler)   # solve the offsets from the fissure's middle in iris diameters
    goal0, goal1 = ((target[0] - 0.5) * ruler, target[1] * ruler) if offsets else (target[0], target[1])
    for _ in range(_NEWTON_STEPS if place else 0):
        f = np.empty((3, 2))
        for k in range(3):
            th = angles[0] + (_DIFF if k == 1 else 0.0)
            ph = angles[1] + (_DIFF if k == 2 else 0.0)
            s_k, h_k, d_k = _iris(centre, rot, th, ph, cam, origin, a, n)
            place_k = (s_k - lateral) / span
            if offsets:
                f[k, 0], f[k, 1] = (place_k - 0.5) * width / d_k, h_k / d_k
            else:
                f[k, 0], f[k, 1] = place_k, h_k / width
        j00, j01 = (f[1, 0] - f[0, 0]) / _DIFF, (f[2, 0] - f[0, 0]) / _DIFF
        j10, j11 = (f[1, 1] - f[0, 1]) / _DIFF, (f[2, 1] - f[0, 1]) / _DIFF
        det = j00 * j11 - j01 * j10
        if abs(det) < 1e-12:
            break
        r0, r1 = goal0 - f[0, 0], goal1 - f[0, 1]
        step0, step1 = (j11 * r0 - j01 * r1) / det, (j00 * r1 - j10 * r0) / det
        angles[0] = min(max(angles[0] + step0, -limits[0]), limits[0])
        angles[1] = min(max(angles[1] + step1, -limits[1]), limits[1])
        if abs(step0) < 1e-4 and abs(step1) < 1e-4:
            break
    s_p, h_p, diameter = _iris(centre, rot, angles[0], angles[1], cam, origin, a, n)
    start = lids.copy()
    at = np.array([s_p, 0.5 * width])
    for lid in range(2):
        sign = -1.0 if lid == 0 else 1.0   # the upper lid's heights are above the line (h < 0)
        mrd, mid = target[2 + lid], target[4 + lid]
        if math.isfinite(mrd):
            goals = np.array([h_p + sign * mrd * diameter, sign * mid * diameter])
            where = at
        else:   # a misread iris: the lid's height at the fissure's middle alone
            goals = np.array([sign * mid * diameter, sign * mid * diameter])
            where = np.array([at[1], at[1]])
        _solve_lid(verts[2 + 7 * lid: 9 + 7 * lid], fields[lid], lids[lid], start[lid], goals, where,
                   math.isfinite(mrd) and math.isfinite(mid), MIN_CLOSURE[lid], corners, cam, origin, a, n, diameter)
    # Never drawn shut while read open: lift the upper lid until the widest gap is MIN_OPEN_DRAWN.
    lower = _moved(verts[9:16], fields[1], lids[1, 0] - start[1, 0], lids[1, 1] - start[1, 1])
    for _ in range(4):
        upper = _moved(verts[2:9], fields[0], lids[0, 0] - start[0, 0], lids[0, 1] - start[0, 1])
        gap = _widest_gap(upper, lower, corners, cam, origin, a, n) / width
        if gap >= MIN_OPEN_DRAWN:
            break
        wider = _widest_gap(_moved(upper, fields[0], -0.05, 0.0), lower, corners, cam, origin, a, n) / width
        if wider <= gap:
            break
        lids[0, 0] = max(lids[0, 0] - 0.05 * (MIN_OPEN_DRAWN - gap) / (wider - gap), MIN_CLOSURE[0])


@njit(cache=True)
def _widest_gap(upper, lower, corners, cam, origin, a, n):
    """Widest lid gap (pixels) of the drawn margins (7 vertices each), sampled at the upper margin's vertices."""
    best = 0.0
    for j in range(upper.shape[0]):
        u, v = _project(cam[0], cam[1], cam[2], cam[3], upper[j, 0], upper[j, 1], upper[j, 2])
        s_j = (u - origin[0]) * a[0] + (v - origin[1]) * a[1]
        h_j = (u - origin[0]) * n[0] + (v - origin[1]) * n[1]
        best = max(best, _margin_height(lower, corners, cam, origin, a, n, s_j) - h_j)
    return best
