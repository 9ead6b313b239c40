"""Gauss-Newton for the avatar: pose, linear shapes and eye rotations from 2D landmarks.

The state is theta = [omega (3), t (3), beta (K), eyes (4)]. Face vertex i is

    V_i(beta) = M_i + sum_k beta_k B_ki,        X_i = R V_i + t        (camera frame)

and the tracked iris centre of eye e is P_e = C_e + rho d(theta_e, phi_e) (eyeball.py),
X_e = R P_e + t. With the pinhole projection pi (camera.py), the energy is

    E = sum_i w_i |pi(X_i) - o_i|^2 / s^2  +  sum_e w_e |pi(X_e) - o_e|^2 / s^2
        + sum_j a_j (theta_j - m_j)^2

where s (pixels per mm at the face) makes residuals read as millimetres on the face and
(a, m) is the prior (`fitter.py` also uses it to hold a hidden eye's rotation). The
rotation is updated on the left, R <- exp([delta_omega]_x) R, so its Jacobian at the
current estimate is dX/domega = -[R V]_x; omega accumulates the increments.

Analytic Jacobian of the projection:

    dpi/dX = [[fx/z, 0, -fx x/z^2], [0, fy/z, -fy y/z^2]]

The normal equations (J^T J + diag(a)) delta = -(J^T r + a (theta - m)) are accumulated
point by point without forming J (only its upper triangle), which keeps a 30-parameter
fit to ~150 points near 0.1 ms per iteration.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

N_POSE = 6
N_EYE = 4


@njit(cache=True)
def rodrigues(w: np.ndarray) -> np.ndarray:
    """exp([w]_x): the rotation by angle |w| about w / |w|."""
    theta = math.sqrt(w[0] * w[0] + w[1] * w[1] + w[2] * w[2])
    r = np.eye(3)
    if theta < 1e-12:
        return r
    k = w / theta
    c, s = math.cos(theta), math.sin(theta)
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return r + s * kx + (1.0 - c) * (kx @ kx)


@njit(cache=True)
def rotation_log(r: np.ndarray) -> np.ndarray:
    """w with rodrigues(w) = R, for rotations under 180 degrees: angle = acos((tr R - 1) / 2),
    axis = (R - R^T)^vee / (2 sin(angle))."""
    cos = min(1.0, max(-1.0, (r[0, 0] + r[1, 1] + r[2, 2] - 1.0) / 2.0))
    theta = math.acos(cos)
    vee = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    if theta < 1e-9:
        return vee / 2.0  # first order: R = I + [w]x
    return vee * (theta / (2.0 * math.sin(theta)))


@njit(cache=True)
def _accumulate(h, g, jx, jy, rx, ry, n):
    """H += Jx^T Jx + Jy^T Jy (upper triangle), g += Jx^T rx + Jy^T ry."""
    for a in range(n):
        ja, jb = jx[a], jy[a]
        if ja == 0.0 and jb == 0.0:
            continue
        g[a] += ja * rx + jb * ry
        for b in range(a, n):
            h[a, b] += ja * jx[b] + jb * jy[b]


@njit(cache=True)
def _point_jacobian(jx, jy, X, P, fx, fy, inv_s):
    """Projection residual Jacobian for the pose block; returns (dpi/dX) * inv_s as 2x3.

    Fills columns 0..5 of jx, jy: rotation (-[P]_x, P = R V) and translation (identity).
    """
    iz = 1.0 / X[2]
    a00 = fx * iz * inv_s
    a02 = -fx * X[0] * iz * iz * inv_s
    a11 = fy * iz * inv_s
    a12 = -fy * X[1] * iz * iz * inv_s
    # d(X)/d(omega) = -[P]_x = [[0, Pz, -Py], [-Pz, 0, Px], [Py, -Px, 0]]
    jx[0] = a02 * P[1]
    jx[1] = a00 * P[2] - a02 * P[0]
    jx[2] = -a00 * P[1]
    jy[0] = -a11 * P[2] + a12 * P[1]
    jy[1] = -a12 * P[0]
    jy[2] = a11 * P[0]
    jx[3] = a00
    jx[4] = 0.0
    jx[5] = a02
    jy[3] = 0.0
    jy[4] = a11
    jy[5] = a12
    return a00, a02, a11, a12


@njit(cache=True)
def _rotate(R, v0, v1, v2):
    """R @ (v0, v1, v2) as a tuple: no allocation in the inner loops."""
    return (
        R[0, 0] * v0 + R[0, 1] * v1 + R[0, 2] * v2,
        R[1, 0] * v0 + R[1, 1] * v1 + R[1, 2] * v2,
        R[2, 0] * v0 + R[2, 1] * v1 + R[2, 2] * v2,
    )


@njit(cache=True)
def _pose_residual(R, t, V, P, X, fx, fy, cx, cy, ox, oy):
    """Fill P = R V and X = P + t; return the pixel residual pi(X) - (ox, oy)."""
    P[0], P[1], P[2] = _rotate(R, V[0], V[1], V[2])
    for r in range(3):
        X[r] = P[r] + t[r]
    return fx * X[0] / X[2] + cx - ox, fy * X[1] / X[2] + cy - oy


@njit(cache=True)
def gauss_newton(
    mean, basis, fit_idx, weights, eye_centres, iris_depth, iris_w,
    obs, iris_obs, inv_s, fx, fy, cx, cy,
    R, t, omega, beta, eyes, prior_w, prior_m, iters,
):
    """Run `iters` Gauss-Newton steps in place on (R, t, omega, beta, eyes).

    mean (N, 3), basis (K, N, 3): the linear face model, mm. fit_idx (F,), weights (F,):
    the vertices compared with `obs` (N, 2) pixels. eye_centres (2, 3), iris_obs (2, 2),
    iris_w (2,): the eyeballs and their tracked iris centres. prior_w, prior_m (6+K+4,):
    the priors' weights and means.
    Returns the weighted RMS reprojection error in pixels after the last step.
    """
    K = basis.shape[0]
    n = N_POSE + K + N_EYE
    jx = np.zeros(n)
    jy = np.zeros(n)
    V = np.zeros(3)
    P = np.zeros(3)
    X = np.zeros(3)
    rms = 0.0
    for it in range(iters + 1):
        h = np.zeros((n, n))
        g = np.zeros(n)
        sq = 0.0
        wsum = 0.0
        for q in range(fit_idx.shape[0]):
            i = fit_idx[q]
            w = weights[q]
            for c in range(3):
                V[c] = mean[i, c]
            for k in range(K):
                bk = beta[k]
                if bk != 0.0:
                    for c in range(3):
                        V[c] += bk * basis[k, i, c]
            ex, ey = _pose_residual(R, t, V, P, X, fx, fy, cx, cy, obs[i, 0], obs[i, 1])
            sq += w * w * (ex * ex + ey * ey)
            wsum += w * w
            if it == iters:
                continue
            a00, a02, a11, a12 = _point_jacobian(jx, jy, X, P, fx, fy, inv_s)
            for k in range(K):
                # d(X)/d(beta_k) = R B_ki
                b0, b1, b2 = basis[k, i, 0], basis[k, i, 1], basis[k, i, 2]
                if b0 == 0.0 and b1 == 0.0 and b2 == 0.0:
                    jx[N_POSE + k] = 0.0
                    jy[N_POSE + k] = 0.0
                    continue
                d0, d1, d2 = _rotate(R, b0, b1, b2)
                jx[N_POSE + k] = a00 * d0 + a02 * d2
                jy[N_POSE + k] = a11 * d1 + a12 * d2
            for k in range(N_EYE):
                jx[N_POSE + K + k] = 0.0
                jy[N_POSE + K + k] = 0.0
            for a in range(n):
                jx[a] *= w
                jy[a] *= w
            _accumulate(h, g, jx, jy, w * ex * inv_s, w * ey * inv_s, n)
        for e in range(2):
            w = iris_w[e]
            th, ph = eyes[2 * e], eyes[2 * e + 1]
            st, ct, sp, cp = math.sin(th), math.cos(th), math.sin(ph), math.cos(ph)
            # P_e = C_e + rho d(theta, phi); d_theta and d_phi are its partial derivatives.
            dvec = (st * cp, -sp, -ct * cp)
            dth = (ct * cp, 0.0, st * cp)
            dph = (-st * sp, -cp, ct * sp)
            for c in range(3):
                V[c] = eye_centres[e, c] + iris_depth * dvec[c]
            ex, ey = _pose_residual(R, t, V, P, X, fx, fy, cx, cy, iris_obs[e, 0], iris_obs[e, 1])
            sq += w * w * (ex * ex + ey * ey)
            wsum += w * w
            if it == iters or w == 0.0:
                continue
            a00, a02, a11, a12 = _point_jacobian(jx, jy, X, P, fx, fy, inv_s)
            for k in range(K + N_EYE):
                jx[N_POSE + k] = 0.0
                jy[N_POSE + k] = 0.0
            for j, dd in enumerate((dth, dph)):
                d0, d1, d2 = _rotate(R, iris_depth * dd[0], iris_depth * dd[1], iris_depth * dd[2])
                jx[N_POSE + K + 2 * e + j] = a00 * d0 + a02 * d2
                jy[N_POSE + K + 2 * e + j] = a11 * d1 + a12 * d2
            for a in range(n):
                jx[a] *= w
                jy[a] *= w
            _accumulate(h, g, jx, jy, w * ex * inv_s, w * ey * inv_s, n)
        rms = math.sqrt(sq / max(wsum, 1e-12))
        if it == iters:
            break
        # Priors: a_j (theta_j - m_j)^2.
        for j in range(n):
            if j < 3:
                cur = omega[j]
            elif j < N_POSE:
                cur = t[j - 3]
            elif j < N_POSE + K:
                cur = beta[j - N_POSE]
            else:
                cur = eyes[j - N_POSE - K]
            h[j, j] += prior_w[j]
            g[j] += prior_w[j] * (cur - prior_m[j])
        for a in range(n):
            h[a, a] += 1e-9
            for b in range(a + 1, n):
                h[b, a] = h[a, b]
        delta = np.linalg.solve(h, -g)
        R[:, :] = rodrigues(delta[0:3]) @ R
        for c in range(3):
            omega[c] += delta[c]
            t[c] += delta[3 + c]
        for k in range(K):
            beta[k] += delta[N_POSE + k]
        for k in range(N_EYE):
            eyes[k] += delta[N_POSE + K + k]
    return rms
