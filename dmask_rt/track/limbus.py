"""The limbus (iris boundary) from the pixels of one eye: radial edges and a robust circle fit.

Rays leave the current iris centre; along each the limbus is the strongest
dark-to-bright step (dark iris inside, bright sclera outside). Only rays whose edge
lies on the visible arc between the lids count: elsewhere the step is the lid's, not
the limbus's. A circle is fitted to those edge points by Gauss-Newton on the radial
residual |p - c| - r with Tukey weights, the radius held near a prior (from the
fissure width, anatomically constant per eye) by a penalty: with only the side arcs
visible, as on most eyes, the radius and the vertical centre are weakly determined by
the edges alone.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .lid_edges import curve_at, grey_at

N_RAYS = 32
N_STEPS = 26
#: The radial search range in prior radii.
R_MIN, R_MAX = 0.3, 1.6
#: Final Tukey scale (in prior radii) and the radius prior's weight (as a count of edge points).
CIRCLE_SCALE = 0.15
RADIUS_PRIOR = 1.0
#: The centre height prior's weight (as a count of edge points).
HEIGHT_PRIOR = 1.0
#: Samples beyond a limbus edge that must all be brighter than the iris side (about 0.3 radii:
#: wider than a catch light).
BRIGHT_SIDE = 6


@njit(cache=True)
def ray_edges(rgb: np.ndarray, frame: np.ndarray, width: float, cs: float, ch: float, radius: float,
              upper: np.ndarray, lower: np.ndarray, inset: float, pts: np.ndarray, wts: np.ndarray) -> int:
    """Limbus edge points (s, h) on the visible arc into pts, their contrasts into wts; returns the count.

    frame = (ox, oy, ax, ay); (cs, ch) the centre in the eye frame; upper/lower the lid
    curve coefficients; an edge must lie `inset` fissure widths inside both lids.
    """
    ox, oy, ax, ay = frame[0], frame[1], frame[2], frame[3]
    nx, ny = -ay, ax
    prof = np.empty(N_STEPS)
    step = (R_MAX - R_MIN) * radius / (N_STEPS - 1)
    n = 0
    for k in range(N_RAYS):
        ang = 2.0 * math.pi * (k + 0.5) / N_RAYS
        ds, dh = math.cos(ang), math.sin(ang)
        for q in range(N_STEPS):
            rr = R_MIN * radius + q * step
            s, h = cs + rr * ds, ch + rr * dh
            # two samples across the ray: a little smoothing along the limbus
            acc = 0.0
            for b in range(2):
                o = (b - 0.5) * 0.5 * step
                ss, hh = s - o * dh, h + o * ds
                acc += grey_at(rgb, ox + ss * ax + hh * nx, oy + ss * ay + hh * ny)
            prof[q] = acc
        best, bq = 0.0, -1
        for q in range(1, N_STEPS - 2):
            e = prof[q + 1] + prof[q + 2] - prof[q] - prof[q - 1]
            # the bright side must stay bright: a catch light inside the iris is a
            # bright spot with dark iris after it, the sclera a band
            lo = prof[q + 1]
            for k in range(q + 2, min(q + 1 + BRIGHT_SIDE, N_STEPS)):
                lo = min(lo, prof[k])
            e = min(e, 2.0 * lo - prof[q] - prof[q - 1])
            if e > best:
                best, bq = e, q
        if bq < 0:
            continue
        off = 0.0
        if 1 < bq < N_STEPS - 3:
            em = prof[bq] + prof[bq + 1] - prof[bq - 1] - prof[bq - 2]
            ep = prof[bq + 2] + prof[bq + 3] - prof[bq + 1] - prof[bq]
            den = em - 2.0 * best + ep
            if den < 0.0:
                off = min(0.5, max(-0.5, 0.5 * (em - ep) / den))
        rr = R_MIN * radius + (bq + 0.5 + off) * step
        s, h = cs + rr * ds, ch + rr * dh
        t = s / width
        if t <= 0.0 or t >= 1.0:
            continue
        if h < (curve_at(upper, t) + inset) * width or h > (curve_at(lower, t) - inset) * width:
            continue
        pts[n, 0], pts[n, 1] = s, h
        wts[n] = best
        n += 1
    return n


@njit(cache=True)
def fit_circle(pts: np.ndarray, wts: np.ndarray, n: int, cs: float, ch: float, r_prior: float,
               anchor_h: float, out: np.ndarray) -> float:
    """Robust circle fit from (cs, ch); out = (cs, ch, r). Returns the inliers' share of the total edge weight.

    The centre's height is held near `anchor_h` (the tracker's) by a penalty: the side
    arcs, often all that the lids leave visible, hardly fix it.
    """
    c0, c1, r = cs, ch, r_prior
    wmax = 0.0
    for p in range(n):
        wmax = max(wmax, wts[p])
    inlier = 0.0
    for it in range(8):
        # the Tukey scale shrinks from a wide start: a start half a radius off keeps its edges
        scale = max(CIRCLE_SCALE, 0.8 * 0.6 ** it)
        A = np.zeros((3, 3))
        g = np.zeros(3)
        inlier, total = 0.0, 0.0
        for p in range(n):
            dx, dy = pts[p, 0] - c0, pts[p, 1] - c1
            d = math.sqrt(dx * dx + dy * dy) + 1e-9
            res = d - r
            q = res / (scale * r_prior)
            ww = wts[p] / wmax * ((1.0 - q * q) ** 2 if q * q < 1.0 else 0.0)
            total += wts[p] / wmax
            if ww > 0.0:
                inlier += wts[p] / wmax
            J0, J1, J2 = -dx / d, -dy / d, -1.0
            A[0, 0] += ww * J0 * J0
            A[0, 1] += ww * J0 * J1
            A[0, 2] += ww * J0 * J2
            A[1, 1] += ww * J1 * J1
            A[1, 2] += ww * J1 * J2
            A[2, 2] += ww * J2 * J2
            g[0] += ww * J0 * res
            g[1] += ww * J1 * res
            g[2] += ww * J2 * res
        A[1, 0], A[2, 0], A[2, 1] = A[0, 1], A[0, 2], A[1, 2]
        # radius prior, and a tiny pull to the start so a degenerate arc stays put
        A[2, 2] += RADIUS_PRIOR
        g[2] += RADIUS_PRIOR * (r - r_prior)
        A[0, 0] += 1e-3
        A[1, 1] += HEIGHT_PRIOR
        g[1] += HEIGHT_PRIOR * (c1 - anchor_h)
        delta = np.linalg.solve(A, -g)
        c0 += delta[0]
        c1 += delta[1]
        r += delta[2]
        r = min(max(r, 0.6 * r_prior), 1.4 * r_prior)
    out[0], out[1], out[2] = c0, c1, r
    return inlier / total if total > 0.0 else 0.0
