"""Per-vertex normals of a deforming triangle mesh, recomputed every frame."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp


class VertexNormals:
    """Area-weighted vertex normals for a fixed triangle list and vertex count.

    The vertex-triangle incidence matrix is built once, so each frame costs one gather,
    one cross product and one sparse matrix product (faster than np.add.at).
    """

    def __init__(self, triangles: np.ndarray, n_vertices: int) -> None:
        tri = np.asarray(triangles, dtype=np.int32)
        m = len(tri)
        self._i0, self._i1, self._i2 = (np.ascontiguousarray(tri[:, k]) for k in range(3))
        self._incidence = sp.csr_matrix(
            (np.ones(3 * m, np.float32), (tri.ravel(), np.repeat(np.arange(m), 3))),
            shape=(n_vertices, m),
        )
        self._face_normals = np.empty((m, 3), np.float32)

    def __call__(self, vertices: np.ndarray) -> np.ndarray:
        """(N, 3) float32 vertices -> (N, 3) float32 unnormalised vertex normals.

        Each is the sum of the adjacent triangles' cross products (twice their area times
        their unit normal), oriented by the triangle winding. Length is left to the
        shader, which normalises anyway; unreferenced vertices get zero.
        """
        p0 = vertices[self._i0]
        e1 = vertices[self._i1] - p0
        e2 = vertices[self._i2] - p0
        fn = self._face_normals
        fn[:, 0] = e1[:, 1] * e2[:, 2] - e1[:, 2] * e2[:, 1]
        fn[:, 1] = e1[:, 2] * e2[:, 0] - e1[:, 0] * e2[:, 2]
        fn[:, 2] = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
        return self._incidence @ fn
