"""Unit hemisphere mesh used for the eyeballs."""
from __future__ import annotations

import numpy as np


def uv_hemisphere(stacks: int = 10, slices: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Unit hemisphere z <= 0 around the -z pole: ((V, 3) float32 points, (T, 3) int32 triangles).

    From outside a sphere only less than a hemisphere is ever visible, so the renderer
    turns this cap towards the camera each frame instead of drawing a whole sphere
    (half the triangles, which is what llvmpipe pays for). The points double as normals.
    """
    theta = np.linspace(0.0, 0.5 * np.pi, stacks + 1)       # angle from the -z pole
    phi = np.linspace(0.0, 2.0 * np.pi, slices, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")           # (stacks+1, slices)
    points = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), -np.cos(t)], axis=-1)
    # The pole is repeated once per slice: simpler indexing, and the duplicates cost nothing.
    idx = np.arange((stacks + 1) * slices).reshape(stacks + 1, slices)
    a = idx[:-1]
    b = np.roll(idx[:-1], -1, axis=1)
    c = idx[1:]
    d = np.roll(idx[1:], -1, axis=1)
    # Counter-clockwise seen from outside (outward normals).
    quads = np.stack([a, b, c, b, d, c], axis=-1).reshape(-1, 3)
    # Drop the zero-area triangles with two corners on the pole.
    keep = np.isin(quads, idx[0]).sum(axis=1) < 2
    return points.reshape(-1, 3).astype(np.float32), quads[keep].astype(np.int32)
