"""Eye outlines refined against the pixels: lid margins and limbus where the image puts them.

The landmark models regress extreme eyes toward normal ones: a shut eye keeps a slit,
a retracted lid is put on the top of the iris, an iris deep in a corner is pulled to
the middle. `EyeRefiner` starts from any `EyeOutline` (the tracker's, via
`tracked_outlines`) and moves

- both lid margins to the edges of the eyeball in the image (`lid_edges`: profile
  search across the lids, robust curve through the corners; crossing margins are
  merged, so shut lids meet; but lids that meet or nearly meet on an eye the tracker
  sees clearly open are a narrowed eye whose dark iris fills the slit, and the
  tracker's outline is kept; so are lids that meet while the other eye is tracked
  clearly open, since blinks shut both eyes, unless the tracker itself sees this eye
  nearly shut, a wink; and lids that meet in both eyes while the tracker sees either
  nearly shut are a blink, shut in both, `refine_pair`). On an open eye, where the
  upper lid rests on the iris the image shows no trustworthy lid edge (lashes on a dark
  iris, catch lights), and there
  the tracker's lid height enters the fit as evidence if the iris is near the fissure's
  middle (over a turned iris the tracker's lid follows the corner it pulled along): the
  image moves the lid where sclera borders it (retraction, closure), the tracker keeps
  it on the iris. Over a turned iris the lid is held at the highest point the sclera
  shows: the lid drapes over the cornea, so its peak follows the iris (labelled eyes at
  extreme gaze: the lid stays high over the iris and falls steeply to the corner, where
  the tracker's shape had it fall from mid-eye); then
- the limbus to the dark-to-bright radial edges on its visible arc (`limbus`: robust
  circle fit, radius held near r/W times the fissure width W, centre height near the
  tracker's, catch lights rejected).

A corner the landmark models put on the iris (the eye turned into it) is moved out
along the corner axis to the limbus found in a first pass (CORNER_CLEARANCE), the
tracked margins stretched with it, and the eye refined again; otherwise the corners
are kept. Per stream the refiner keeps each eye's limbus radius as a
fraction of its fissure width (anatomically constant), averaged over frames where the
iris was well seen in the middle of the fissure (a turned iris is an ellipse whose
circle fit is too small, and the landmark models pull a corner along with it: let in,
those frames shrank the radius by up to a fifth over a clip of gaze shifts), and
reports that radius (the circle fit itself is held near the tracker's radius), and
each eye's latest tracked opening; `reset()` forgets them, and a single frame reports
its own fit. `refined_outlines(refiner, rgb, landmarks)` gives both eyes for the pipeline.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .eye_outline import EyeOutline, eye_frame, margin_profile, tracked_outlines
from .landmarks import FaceLandmarks
from .lid_edges import (LASH_BELOW, LOWER_WINDOW, MAX_ROWS, N_BASIS, N_COLS, ROW_STEP, T_MARGIN, UPPER_WINDOW, basis,
                        column_edge, curve_at, fit_curve, sample_patch)
from .limbus import N_RAYS, fit_circle, ray_edges

#: Margin points returned per lid, evenly spaced between the corners.
N_MARGIN = 7
#: Columns closer than this to the iris centre (in radii) see the iris, not sclera, above the lower lid.
IRIS_COLUMN = 0.75
#: Ray casts of the limbus search, each from the previous fit's centre.
LIMBUS_PASSES = 2
#: Lids closer than this (fissure widths) over the whole eye leave no limbus to fit.
MIN_GAP = 0.06
#: Lids this far apart (fissure widths) are an open eye: where the upper lid covers the
#: iris it keeps the tracker's height, weighted as this share of the strongest lid edge.
OPEN_GAP, ANCHOR = 0.15, 0.5
#: A tracked opening (fissure widths) this wide is kept when the refined lids meet: on the
#: tuning clips' labelled eyes the tracker reads shut eyes at up to 0.17 of the width open.
TRACKER_OPEN = 0.18
#: Blinks shut both eyes: lids that meet while the other eye's tracked opening is clearly
#: open (TRACKER_OPEN) are a narrowed eye, unless this eye's own tracked opening is a slit
#: narrower than this (fissure widths; a wink).
ONE_EYE_SLIT = 0.07
#: Blinks shut both eyes: when the refined lids meet in both (MIN_GAP) and the tracker reads
#: either eye narrower than this (fissure widths), both are shut, whatever the tracker reads
#: of the other. At low resolution the tracker reads a shut eye open at 0.20 (p08, whose
#: open eyes it reads at 0.31); on the labelled eyes whose lids both met, the blinks had
#: an eye tracked at 0.00-0.08 and the half-shut eyes both at 0.15 or more.
BLINK_SLIT = 0.11
#: A limbus fit counts towards the stream's r/W when this many edges and this share of their weight agree.
GOOD_EDGES, GOOD_SHARE = 10, 0.7
#: A limbus fit with this many edges (and GOOD_SHARE) may move a corner off the iris: an iris
#: deep in a corner shows one arc.
CORNER_EDGES = 5
#: Weight of a new good frame in the stream's running r/W.
RATIO_RATE = 0.1
#: An iris this close to the middle of the fissure (fissure widths) is not turned. Only such
#: an iris updates r/W (a turned iris is an ellipse whose circle fit is too small, and the
#: corners move with the gaze), and only over such an iris does the tracker's lid anchor
#: the upper lid (over a turned one it follows the corner the landmark models pulled).
IRIS_CENTRAL = 0.15


@njit(cache=True)
def refine_kernel(rgb: np.ndarray, frame: np.ndarray, width: float, u0: np.ndarray, l0: np.ndarray,
                  iris: np.ndarray, upper: np.ndarray, lower: np.ndarray,
                  iris_out: np.ndarray) -> tuple[int, float]:
    """Refine one eye in its frame (s along the corner axis, h down, pixels).

    u0, l0: the starting margins' heights at the patch columns; iris: (s, h, r) start, its
    radius also the circle fit's prior.
    Writes the lid curve coefficients (fissure widths) and the limbus (s, h, r);
    returns the limbus edge count and inlier share (0, 0 when the eye shows no limbus).
    """
    r_prior = iris[2]
    dh = ROW_STEP * width
    top, bottom = u0.min() - UPPER_WINDOW[0] * width - 3 * dh, l0.max() + LOWER_WINDOW[1] * width + 3 * dh
    n_rows = min(MAX_ROWS, int((bottom - top) / dh) + 1)
    patch = np.empty((n_rows, N_COLS))
    sample_patch(rgb, frame, width, top, n_rows, patch)

    ts = np.empty(N_COLS)
    hu, wu = np.empty(N_COLS), np.empty(N_COLS)
    hl, wl = np.empty(N_COLS), np.empty(N_COLS)
    covered = np.zeros(N_COLS, np.bool_)
    lash_rows = max(1, int(round(LASH_BELOW / ROW_STEP)))
    for j in range(N_COLS):
        t = T_MARGIN + (1.0 - 2.0 * T_MARGIN) * (j + 0.5) / N_COLS
        ts[j] = t
        hu[j], wu[j] = column_edge(patch, j, n_rows, top, dh, u0[j] - UPPER_WINDOW[0] * width,
                                   min(u0[j] + UPPER_WINDOW[1] * width, l0[j]), 1, lash_rows, True)
        # below the iris the lower lid is brighter than what it borders; below sclera darker
        on_iris = abs(t * width - iris[0]) < IRIS_COLUMN * iris[2]
        hl[j], wl[j] = column_edge(patch, j, n_rows, top, dh, l0[j] - LOWER_WINDOW[0] * width,
                                   l0[j] + LOWER_WINDOW[1] * width, 0 if on_iris else -1, 0, True)
        # over the iris the lid's step (lashes on a dark iris) is weak and catch lights
        # inside the iris make strong ones: only a lid clear of the iris (sclera between) counts,
        # a lid on the iris is "covered"
        dx = t * width - iris[0]
        covered[j] = dx * dx < iris[2] * iris[2] and hu[j] > iris[1] - np.sqrt(iris[2] * iris[2] - dx * dx) - 0.02 * width
        if covered[j]:
            wu[j] = 0.0
    _cap(wu)
    _cap(wl)

    # the starting curves in the same basis: the prior of each fit
    pu, pl = np.zeros(N_BASIS), np.zeros(N_BASIS)
    _least_squares(ts, u0, width, pu)
    _least_squares(ts, l0, width, pl)
    fit_curve(ts, hu, wu, N_COLS, pu, width, upper)
    fit_curve(ts, hl, wl, N_COLS, pl, width, lower)

    gap = _gap(upper, lower)
    if gap >= OPEN_GAP and abs(iris[0] / width - 0.5) < IRIS_CENTRAL:
        # an open eye whose lid covers a centred iris: there the lid's edge is lashes on a
        # dark iris (weak, or the lashes' top) and the tracker's lid, fitted to the iris's top,
        # stands in for it, so the sclera's edges on either side cannot bend the lid into the iris
        _refit_covered(ts, hu, wu, covered, u0, pu, width, upper)
        gap = _gap(upper, lower)
    elif gap >= OPEN_GAP and covered.any() and not covered.all():
        # an open eye turned (module docstring): the lid over the iris at the sclera's peak,
        # the curve's shape from the first fit, not the tracker's (drawn for a centred iris)
        peak = 1e9
        for j in range(N_COLS):
            if not covered[j]:
                peak = min(peak, curve_at(upper, ts[j]) * width)
        _refit_covered(ts, hu, wu, covered, np.full(N_COLS, peak), upper.copy(), width, upper)
        gap = _gap(upper, lower)
    if gap < MIN_GAP:
        iris_out[0], iris_out[1], iris_out[2] = iris[0], iris[1], r_prior
        return 0, 0.0
    pts = np.empty((N_RAYS, 2))
    wts = np.empty(N_RAYS)
    iris_out[0], iris_out[1], iris_out[2] = iris[0], iris[1], r_prior
    n, share = 0, 0.0
    for _ in range(LIMBUS_PASSES):  # rays again from the fitted centre: a far start sees one side only
        n = ray_edges(rgb, frame, width, iris_out[0], iris_out[1], r_prior, upper, lower, 0.03, pts, wts)
        if n < 5:
            return n, 0.0
        share = fit_circle(pts, wts, n, iris_out[0], iris_out[1], r_prior, iris[1], iris_out)
    return n, share


@njit(cache=True)
def _refit_covered(ts: np.ndarray, hu: np.ndarray, wu: np.ndarray, covered: np.ndarray, heights: np.ndarray,
                   prior: np.ndarray, width: float, upper: np.ndarray) -> None:
    """Fit the upper lid again (into `upper`) with each covered column's evidence the given
    height, weighted ANCHOR times the strongest edge: where the lid lies on the iris the
    image shows no edge to trust."""
    cap = wu.max()
    for j in range(N_COLS):
        if covered[j]:
            hu[j], wu[j] = heights[j], ANCHOR * cap
    fit_curve(ts, hu, wu, N_COLS, prior, width, upper)


@njit(cache=True)
def _gap(upper: np.ndarray, lower: np.ndarray) -> float:
    """The widest gap between the fitted lids, fissure widths (negative: crossed everywhere)."""
    gap = -1.0
    for k in range(41):
        t = k / 40.0
        gap = max(gap, curve_at(lower, t) - curve_at(upper, t))
    return gap


@njit(cache=True)
def _cap(w: np.ndarray) -> None:
    """Caps edge weights at half the strongest: contrast says which edge, not how much one column counts."""
    cap = 0.5 * w.max()
    for j in range(w.shape[0]):
        w[j] = min(w[j], cap)


@njit(cache=True)
def _least_squares(ts: np.ndarray, h: np.ndarray, width: float, coef: np.ndarray) -> None:
    """Plain least-squares fit of the curve basis to (ts, h / W)."""
    bv = np.empty(N_BASIS)
    A = np.zeros((N_BASIS, N_BASIS))
    r = np.zeros(N_BASIS)
    for p in range(ts.shape[0]):
        basis(ts[p], bv)
        for k in range(N_BASIS):
            r[k] += bv[k] * h[p] / width
            for m in range(N_BASIS):
                A[k, m] += bv[k] * bv[m]
    for k in range(N_BASIS):
        A[k, k] += 1e-9
    sol = np.linalg.solve(A, r)
    for k in range(N_BASIS):
        coef[k] = sol[k]


class EyeRefiner:
    """Refines eye outlines against the frame's pixels (module docstring); one per stream."""

    def __init__(self) -> None:
        self._ratio: list[float | None] = [None, None]
        # each eye's latest tracked opening (fissure widths): the other eye's evidence of a blink
        self._opening: list[float | None] = [None, None]
        # this frame's (tracked opening, refined outline) of each eye whose lids met, for `refine_pair`
        self._met: list[tuple[float, EyeOutline] | None] = [None, None]
        self._cols = T_MARGIN + (1.0 - 2.0 * T_MARGIN) * (np.arange(N_COLS) + 0.5) / N_COLS
        self._out_t = (np.arange(N_MARGIN) + 1.0) / (N_MARGIN + 1.0)

    def reset(self) -> None:
        """Forget the stream (new subject or cut): the next frame starts from its outline's radius."""
        self._ratio = [None, None]
        self._opening = [None, None]

    def _run(self, rgb: np.ndarray, outline: EyeOutline) -> tuple:
        """One pass of `refine_kernel` from `outline`: its frame, the tracked margins at the
        patch columns, the fitted lid curves and limbus, the limbus edge count and share."""
        origin, a, n, width = eye_frame(outline.corners)
        su, hu = margin_profile(outline, "upper")
        sl, hl = margin_profile(outline, "lower")
        s = self._cols * width
        u0, l0 = np.interp(s, su, hu), np.interp(s, sl, hl)
        rel = np.asarray(outline.iris_centre, float) - origin
        iris = np.array([rel @ a, rel @ n, float(outline.iris_radius)])
        frame = np.array([origin[0], origin[1], a[0], a[1]])
        upper, lower, limbus = np.empty(N_BASIS), np.empty(N_BASIS), np.empty(3)
        count, share = refine_kernel(rgb, frame, width, u0, l0, iris, upper, lower, limbus)
        return origin, a, n, width, u0, l0, upper, lower, limbus, count, share

    def refine(self, rgb: np.ndarray, outline: EyeOutline, eye: int) -> EyeOutline:
        """The outline of eye `eye` (0 = subject's right, image left) refined against `rgb` (H, W, 3 uint8)."""
        self._met[eye] = None
        if eye_frame(outline.corners)[3] < 4.0:  # nothing to resolve: a few pixels of eye
            return outline
        origin, a, n, width, u0, l0, upper, lower, limbus, count, share = self._run(rgb, outline)
        moved = None
        if count >= CORNER_EDGES and share >= GOOD_SHARE:
            # an iris found across a corner: the landmark models put the corner on the iris
            # when the eye turns into it, and lids through that corner cut the iris
            centre = origin + limbus[0] * a + limbus[1] * n
            moved = _corners_clear_of_iris(EyeOutline(outline.corners, outline.upper, outline.lower, centre,
                                                      float(limbus[2])))
            if moved is not None:
                outline = _stretched(outline, moved)
                origin, a, n, width, u0, l0, upper, lower, limbus, count, share = self._run(rgb, outline)
        tracked, other = float(np.max(l0 - u0)) / width, self._opening[1 - eye]
        if eye == 0 and other is not None and self._opening[0] is not None:
            # the right eye is refined first, so the left's opening is the last frame's: blinks
            # move both eyes alike, so the left is taken as differing from the right as it did then
            other = tracked + other - self._opening[0]
        self._opening[eye] = tracked
        gap = _gap(upper, lower)
        ratio = self._ratio[eye]

        def image_outline(ratio: float | None) -> EyeOutline:
            # the stream's radius is the one reported; the fit itself keeps the tracker's as
            # its prior: with one arc visible (gaze into a corner) a larger prior radius
            # pushes the centre into the corner (labelled eyes, p01 and p02)
            iris = limbus if ratio is None else np.array([limbus[0], limbus[1], ratio * width])
            return _outline(outline.corners, origin, a, n, width, self._out_t, upper, lower, iris)

        if gap < MIN_GAP:
            self._met[eye] = (tracked, image_outline(ratio))
        if (gap < OPEN_GAP and tracked >= TRACKER_OPEN) or (
                gap < MIN_GAP and tracked >= ONE_EYE_SLIT and other is not None and other >= TRACKER_OPEN):
            # a narrowed or half-shut eye whose dark iris fills the slit looks the same to
            # the edge search as a shut one (lash line between lid skin), or nearly (the
            # step under the iris passes for the upper margin): the tracker's clearly open
            # eye stands, and so does an eye it sees narrowed beside an open one; its iris
            # takes the stream's radius (the iris model shrinks a half-covered iris)
            return outline if ratio is None else EyeOutline(outline.corners, outline.upper, outline.lower,
                                                            outline.iris_centre, ratio * width)
        if count >= GOOD_EDGES and share >= GOOD_SHARE and moved is None and abs(limbus[0] / width - 0.5) < IRIS_CENTRAL:
            r = limbus[2] / width
            ratio = self._ratio[eye] = r if ratio is None else (1.0 - RATIO_RATE) * ratio + RATIO_RATE * r
        return image_outline(ratio)

    def refine_pair(self, rgb: np.ndarray, right: EyeOutline, left: EyeOutline) -> tuple[EyeOutline, EyeOutline]:
        """Both eyes of a frame refined (`refine`), then a blink shut in both (BLINK_SLIT)."""
        out = (self.refine(rgb, right, 0), self.refine(rgb, left, 1))
        met = self._met
        if met[0] is not None and met[1] is not None and min(met[0][0], met[1][0]) < BLINK_SLIT:
            return met[0][1], met[1][1]
        return out


#: How far beyond the iris's edge (in radii) each corner lies at least, lateral and medial: the
#: landmark models put a corner on the iris when the eye turns into it (labelled eyes of the
#: tuning clips: the lateral corner lies 0.3-1.0 radii beyond the iris, the medial corner at
#: most 0.3 radii inside the iris's edge, under the caruncle).
CORNER_CLEARANCE = (0.3, -0.3)


def _corners_clear_of_iris(outline: EyeOutline) -> np.ndarray | None:
    """The corners with any that lies on the iris moved outward along the corner axis
    (CORNER_CLEARANCE); None when none does."""
    corners = np.array(outline.corners, float)
    moved = False
    for k in range(2):
        out = corners[k] - corners[1 - k]
        span = float(np.hypot(*out))
        out /= span
        need = float((np.asarray(outline.iris_centre, float) - corners[1 - k]) @ out) + (1.0 + CORNER_CLEARANCE[k]) * float(outline.iris_radius)
        if need > span:
            corners[k] = corners[1 - k] + need * out
            moved = True
    return corners if moved else None


def _stretched(outline: EyeOutline, corners: np.ndarray) -> EyeOutline:
    """The outline with new corners on its corner axis, the margins stretched along the axis
    with them (heights kept): the tracker's lids keep their shape between the corners it saw."""
    origin, a, n, width = eye_frame(outline.corners)
    new_origin, _, _, new_width = eye_frame(corners)
    shift = float((new_origin - origin) @ a)

    def stretch(pts: np.ndarray) -> np.ndarray:
        rel = np.asarray(pts, float) - origin
        s = shift + (rel @ a) * new_width / width
        return origin + np.outer(s, a) + np.outer(rel @ n, n)
    return EyeOutline(corners, stretch(outline.upper), stretch(outline.lower), outline.iris_centre,
                      outline.iris_radius)


def _outline(corners: np.ndarray, origin: np.ndarray, a: np.ndarray, n: np.ndarray, width: float,
             t: np.ndarray, upper: np.ndarray, lower: np.ndarray, limbus: np.ndarray) -> EyeOutline:
    """Image-pixel outline from the fitted curves; crossing margins meet half way."""
    g, u = t * (1.0 - t), t - 0.5
    hu = g * (upper[0] + upper[1] * u + upper[2] * u * u) * width
    hl = g * (lower[0] + lower[1] * u + lower[2] * u * u) * width
    mid = 0.5 * (hu + hl)
    crossed = hu > hl
    hu, hl = np.where(crossed, mid, hu), np.where(crossed, mid, hl)
    s = t * width
    to_image = lambda h: origin + np.outer(s, a) + np.outer(h, n)  # noqa: E731
    centre = origin + limbus[0] * a + limbus[1] * n
    return EyeOutline(np.asarray(corners, float), to_image(hu), to_image(hl), centre, float(limbus[2]))


def refined_outlines(refiner: EyeRefiner, rgb: np.ndarray, landmarks: FaceLandmarks) -> tuple[EyeOutline, EyeOutline]:
    """(right, left) eye outlines of the tracker's landmarks, refined against `rgb`."""
    return refiner.refine_pair(rgb, *tracked_outlines(landmarks))
