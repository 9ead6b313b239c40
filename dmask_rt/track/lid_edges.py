"""Lid margins from the pixels of one eye: edge profiles across the lids, a curve through the corners.

The eye is resampled into a patch aligned with its corner axis (columns along the
fissure, rows across it, both in units of the fissure width W, so the same code runs
on a 20 px and a 200 px eye). Down each column the upper margin is where the dark lid
and lashes give way to the brighter eyeball (the strongest dark-to-bright step near the
tracked lid); the lower margin is where the eyeball gives way to the lower lid:
bright-to-dark below the sclera, but dark-to-bright below the iris, which is darker
than the lid skin. The lid shades the eyeball next to it, so a step's steepest point
lies inside the eye: the margin is taken at the step's foot on the lid's side; under
the iris, where the lower lid's margin strip (brighter than the iris, darker than the
skin) makes two steps, at the upper one, and under a light iris at the dark line the
margin makes between iris and lid. A margin is then a robust least-squares curve through the fixed
corners,

    h(t) = W t (1 - t) (c0 + c1 (t - 1/2) + c2 (t - 1/2)^2),    t = s / W in [0, 1],

fitted to the per-column edges weighted by their contrast (Tukey weights, a weak pull
towards the tracked curve for columns without evidence). On a shut eye both searches
land on the one lash line, the upper on its lower side and the lower on its upper
side: where the fitted curves cross they are merged, so shut lids meet.

Patch sampling and the fit are Numba kernels that allocate nothing per point.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

#: Columns across the fissure and the patch's row step in fissure widths.
N_COLS = 28
ROW_STEP = 1.0 / 48.0
MAX_ROWS = 80
#: Columns cover t in [T_MARGIN, 1 - T_MARGIN]: at the corners the lids meet and no edge separates them.
T_MARGIN = 0.04
#: Edge search windows around the tracked margins, in fissure widths (up, down).
UPPER_WINDOW = (0.22, 0.15)
#: How far below an upper-margin candidate a lash line would disqualify it (fissure widths).
LASH_BELOW = 0.15
LOWER_WINDOW = (0.15, 0.15)
#: Tukey scale of the curve fit, and the pull of each coefficient towards the tracked
#: curve's (relative to the data's weight): the lid's height is the image's, its shape
#: (skew, flatness) mostly the tracker's, which per-column edges alone make wavy.
FIT_SCALE = 0.04
PRIOR_WEIGHT = (0.02, 0.2, 0.2)
N_BASIS = 3


@njit(cache=True)
def grey_at(rgb: np.ndarray, x: float, y: float) -> float:
    """Bilinear grey (0.2 R + 0.5 G + 0.3 B: the sclera stands out against skin in G and B)."""
    h, w = rgb.shape[0], rgb.shape[1]
    if x < 0.0:
        x = 0.0
    if y < 0.0:
        y = 0.0
    if x > w - 1.001:
        x = w - 1.001
    if y > h - 1.001:
        y = h - 1.001
    x0, y0 = int(x), int(y)
    fx, fy = x - x0, y - y0
    acc = 0.0
    for dy in range(2):
        wy = fy if dy else 1.0 - fy
        for dx in range(2):
            wx = fx if dx else 1.0 - fx
            p = rgb[y0 + dy, x0 + dx]
            acc += wx * wy * (0.2 * p[0] + 0.5 * p[1] + 0.3 * p[2])
    return acc


@njit(cache=True)
def sample_patch(rgb: np.ndarray, frame: np.ndarray, width: float, h0: float, n_rows: int, patch: np.ndarray) -> None:
    """patch[i, j] = grey averaged over the cell at column t_j, row h0 + i * ROW_STEP * W.

    frame = (ox, oy, ax, ay): the image-left corner and the unit corner axis.
    """
    ox, oy, ax, ay = frame[0], frame[1], frame[2], frame[3]
    nx, ny = -ay, ax
    dh = ROW_STEP * width
    ds = (1.0 - 2.0 * T_MARGIN) * width / N_COLS
    for j in range(N_COLS):
        s = (T_MARGIN + (1.0 - 2.0 * T_MARGIN) * (j + 0.5) / N_COLS) * width
        for i in range(n_rows):
            h = h0 + i * dh
            acc = 0.0
            for a in range(3):  # box filter over the cell: no aliasing on large eyes
                sa = s + (a - 1) * ds / 3.0
                for b in range(2):
                    hb = h + (b - 0.5) * dh / 2.0
                    acc += grey_at(rgb, ox + sa * ax + hb * nx, oy + sa * ay + hb * ny)
            patch[i, j] = acc / 6.0


#: The margin is the foot of the lid's step on its dark side, where the profile has risen
#: this share of the way from the dark line (lash roots, the margin's shadow) to the
#: eyeball: the eyeball brightens away from the margin over a shadow, so the steepest
#: point lies inside the eye (by 0.01-0.05 W on the labelled eyes' mean profiles).
FOOT = 0.15
#: How far (fissure widths) the dark line and the bright eyeball are looked for beside the step.
FOOT_REACH = 0.1


@njit(cache=True)
def column_edge(patch: np.ndarray, j: int, n_rows: int, h0: float, dh: float, lo: float, hi: float,
                sign: int, below: int = 0, foot: bool = False) -> tuple[float, float]:
    """(h, strength) of the strongest step in column j with its centre in [lo, hi].

    The step between rows i and i + 1 compares the two rows below with the two above;
    sign +1 wants dark above (h increases downwards), -1 bright above, 0 either.
    below > 0: a step is marked down by the strongest opposite step within `below`
    rows under it, so the bright lid skin between a crease and the lash line of a
    shut eye does not pass for the eyeball below the upper margin.
    The location is refined to sub-row precision by a parabola through the peak; with
    `foot` (sign +-1) it is moved to the step's foot on the dark side (FOOT).
    """
    best, best_i = -1e30, -1
    first = max(2, int(math.ceil((lo - h0) / dh - 0.5)))
    last = min(n_rows - 3, int(math.floor((hi - h0) / dh - 0.5)))
    for i in range(first, last + 1):
        e = patch[i + 1, j] + patch[i + 2, j] - patch[i, j] - patch[i - 1, j]
        v = abs(e) if sign == 0 else sign * e
        if below > 0:
            worst = 0.0
            for k in range(i + 2, min(i + 2 + below, n_rows - 2)):
                back = -sign * (patch[k + 1, j] + patch[k + 2, j] - patch[k, j] - patch[k - 1, j])
                worst = max(worst, back)
            v -= worst
        if v > best:
            best, best_i = v, i
    if best_i < 0:
        return math.nan, 0.0
    i = best_i
    sgn = 1.0 if sign == 0 and patch[i + 1, j] + patch[i + 2, j] >= patch[i, j] + patch[i - 1, j] else float(sign if sign else -1)
    off = 0.0
    if first < i < last:
        em = sgn * (patch[i, j] + patch[i + 1, j] - patch[i - 1, j] - patch[i - 2, j])
        ep = sgn * (patch[i + 2, j] + patch[i + 3, j] - patch[i + 1, j] - patch[i, j])
        den = em - 2.0 * best + ep
        if den < 0.0:
            off = 0.5 * (em - ep) / den
            off = min(0.5, max(-0.5, off))
    if foot and sign != 0:
        return _foot(patch, j, n_rows, h0, dh, i, sign, i + 0.5 + off), best
    if foot and sgn > 0:
        upper = _upper_step(patch, j, i, best)
        if upper >= 0:
            return h0 + (upper + 0.5) * dh, best
        return _dark_line(patch, j, n_rows, h0, dh, i, i + 0.5 + off), best
    return h0 + (i + 0.5 + off) * dh, best


@njit(cache=True)
def _upper_step(patch: np.ndarray, j: int, i: int, best: float) -> int:
    """Row of the uppermost dark-above step within FOOT_REACH above step i that is at least
    half as strong and stays bright down to it (-1 if none): under the iris the lower lid's
    margin strip, brighter than the iris and darker than the lid skin, makes two steps, and
    the margin is the upper one."""
    reach = max(2, int(round(FOOT_REACH / ROW_STEP)))
    found = -1
    for k in range(i - 2, max(1, i - reach) - 1, -1):
        e = patch[k + 1, j] + patch[k + 2, j] - patch[k, j] - patch[k - 1, j]
        up = patch[k, j] + patch[k + 1, j] - patch[k - 1, j] - patch[k - 2, j] if k >= 2 else -1e30
        down = patch[k + 2, j] + patch[k + 3, j] - patch[k + 1, j] - patch[k, j]
        if e >= 0.5 * best and e >= up and e >= down:
            # the strip stays bright down to the lid: a catch light in the iris falls back
            mid = 0.25 * (patch[k - 1, j] + patch[k, j] + patch[k + 1, j] + patch[k + 2, j])
            low = patch[k + 2, j]
            for m in range(k + 2, i + 1):
                low = min(low, patch[m, j])
            if low >= mid:
                found = k
    return found


@njit(cache=True)
def _dark_line(patch: np.ndarray, j: int, n_rows: int, h0: float, dh: float, i: int, peak: float) -> float:
    """A lower lid's margin over the iris, its step dark above bright (rows i, i + 1): a dark
    line between iris and lid (the margin's shadow) is the margin; without one the step is.

    The line is the darkest row within FOOT_REACH above the step when it is clearly darker
    than the iris above it (a third of the step's rise).
    """
    reach = max(2, int(round(FOOT_REACH / ROW_STEP)))
    k_dark, dark = i, patch[i, j]
    for k in range(i - 1, max(-1, i - reach - 1), -1):
        if patch[k, j] < dark:
            k_dark, dark = k, patch[k, j]
    above = patch[max(0, i - reach - 1), j]
    if k_dark <= max(0, i - reach - 1) + 1 or above - dark < (patch[min(n_rows - 1, i + 2), j] - dark) / 3.0:
        return h0 + peak * dh
    off = 0.0
    if 0 < k_dark < n_rows - 1:
        den = patch[k_dark - 1, j] - 2.0 * dark + patch[k_dark + 1, j]
        if den > 0.0:
            off = min(0.5, max(-0.5, 0.5 * (patch[k_dark - 1, j] - patch[k_dark + 1, j]) / den))
    return h0 + (k_dark + off) * dh


@njit(cache=True)
def _foot(patch: np.ndarray, j: int, n_rows: int, h0: float, dh: float, i: int, sign: int, peak: float) -> float:
    """Height where column j rises FOOT of the way from its dark line to the eyeball beside the step between rows i, i + 1.

    sign +1: dark above (rows < i + 1); -1: dark below. The answer lies between the dark
    line and the step's steepest point `peak` (fractional row).
    """
    reach = max(2, int(round(FOOT_REACH / ROW_STEP)))
    step = -sign  # towards the dark side
    dark_start = i if sign > 0 else i + 1
    bright_start = i + 1 if sign > 0 else i
    dark, k_dark = patch[dark_start, j], dark_start
    k = dark_start
    for _ in range(reach):
        k += step
        if k < 0 or k >= n_rows:
            break
        if patch[k, j] < dark:
            dark, k_dark = patch[k, j], k
    bright = patch[bright_start, j]
    k = bright_start
    for _ in range(reach):
        k -= step
        if k < 0 or k >= n_rows:
            break
        bright = max(bright, patch[k, j])
    level = dark + FOOT * (bright - dark)
    # walk from the dark line towards the step: the first row above the level
    k = k_dark
    while k != bright_start and patch[k - step, j] <= level:
        k -= step
    nxt = k - step
    frac = (level - patch[k, j]) / max(patch[nxt, j] - patch[k, j], 1e-9)
    at = k - step * min(1.0, max(0.0, frac))
    # never beyond the steepest point
    return h0 + (min(at, peak) if sign > 0 else max(at, peak)) * dh


@njit(cache=True)
def basis(t: float, out: np.ndarray) -> None:
    """The curve's basis functions at t (module docstring), in fissure widths."""
    g = t * (1.0 - t)
    u = t - 0.5
    out[0] = g
    out[1] = g * u
    out[2] = g * u * u


@njit(cache=True)
def fit_curve(t: np.ndarray, h: np.ndarray, w: np.ndarray, n: int, prior: np.ndarray, width: float,
              coef: np.ndarray) -> None:
    """Robust weighted fit of the lid curve (in units of W) to n points (t, h / W) with weights w.

    The prior coefficients enter as a ridge of PRIOR_WEIGHT times the data's own
    diagonal, so weak or missing evidence leaves the tracked shape; Tukey reweighting drops edges
    that belong to something else (a crease, a catch light, the lashes' far side).
    """
    bv = np.empty(N_BASIS)
    A = np.empty((N_BASIS, N_BASIS))
    r = np.empty(N_BASIS)
    for k in range(N_BASIS):
        coef[k] = prior[k]
    # mean square of each basis function over the columns: the ridge's floor, so a
    # few strong columns cannot bend the shape terms where no column has evidence
    floor = np.zeros(N_BASIS)
    for p in range(n):
        basis(t[p], bv)
        for k in range(N_BASIS):
            floor[k] += bv[k] * bv[k] / n
    for it in range(6):
        A[:] = 0.0
        r[:] = 0.0
        total = 0.0
        for p in range(n):
            if w[p] <= 0.0:
                continue
            basis(t[p], bv)
            pred = 0.0
            for k in range(N_BASIS):
                pred += bv[k] * coef[k]
            res = h[p] / width - pred
            ww = w[p]
            if it > 0:  # first pass least squares from the prior, then Tukey
                q = res / FIT_SCALE
                ww *= (1.0 - q * q) ** 2 if q * q < 1.0 else 0.0
            total += ww
            for k in range(N_BASIS):
                r[k] += ww * bv[k] * h[p] / width
                for m in range(N_BASIS):
                    A[k, m] += ww * bv[k] * bv[m]
        if total <= 0.0:
            break
        for k in range(N_BASIS):
            lam = PRIOR_WEIGHT[k] * max(A[k, k], floor[k] * total) + 1e-12
            A[k, k] += lam
            r[k] += lam * prior[k]
        sol = np.linalg.solve(A, r)
        for k in range(N_BASIS):
            coef[k] = sol[k]


@njit(cache=True)
def curve_at(coef: np.ndarray, t: float) -> float:
    """The fitted curve's height at t, in fissure widths."""
    g = t * (1.0 - t)
    u = t - 0.5
    return g * (coef[0] + coef[1] * u + coef[2] * u * u)
