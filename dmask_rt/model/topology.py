"""Which avatar vertices form the face surface, the rims of its openings and its brows."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FaceTopology:
    """Connectivity of the avatar face mesh, fixed for the whole session.

    triangles:  (M, 3) int32 vertex indices of the face surface; the surface has holes
                at the eyes and the mouth. The winding must be consistent (either way):
                the renderer culls the back of the skin.
    eye_rings:  (2, 16) int32 closed rings of lid-margin vertices around each eye
                opening, in order around the ring ([0] = subject's right eye, [1] = left).
    mouth_ring: (K,) int32 closed ring of inner-lip vertices around the mouth opening.
    brows:      (2, 2, B) int32 per brow its lower and upper edge (the renderer paints
                these vertices brow-coloured); (2, 2, 0) for none.
    """

    triangles: np.ndarray
    eye_rings: np.ndarray
    mouth_ring: np.ndarray
    brows: np.ndarray

    def __post_init__(self) -> None:
        # Normalise dtypes once here so the renderer can upload them as-is.
        tri = np.ascontiguousarray(self.triangles, dtype=np.int32)
        eyes = np.ascontiguousarray(self.eye_rings, dtype=np.int32)
        mouth = np.ascontiguousarray(self.mouth_ring, dtype=np.int32)
        brows = np.ascontiguousarray(self.brows, dtype=np.int32)
        if tri.ndim != 2 or tri.shape[1] != 3 or len(tri) == 0:
            raise ValueError(f"triangles must be (M, 3), got {tri.shape}")
        if eyes.ndim != 2 or eyes.shape[0] != 2 or eyes.shape[1] < 3:
            raise ValueError(f"eye_rings must be (2, n>=3), got {eyes.shape}")
        if mouth.ndim != 1 or len(mouth) < 3:
            raise ValueError(f"mouth_ring must be (K>=3,), got {mouth.shape}")
        if brows.ndim != 3 or brows.shape[:2] != (2, 2):
            raise ValueError(f"brows must be (2, 2, B), got {brows.shape}")
        if min(tri.min(), eyes.min(), mouth.min(), brows.min(initial=0)) < 0:
            raise ValueError("vertex indices must be non-negative")
        object.__setattr__(self, "triangles", tri)
        object.__setattr__(self, "eye_rings", eyes)
        object.__setattr__(self, "mouth_ring", mouth)
        object.__setattr__(self, "brows", brows)

    @property
    def min_vertex_count(self) -> int:
        """Smallest vertex array length that every index here fits into."""
        return int(max(self.triangles.max(), self.eye_rings.max(), self.mouth_ring.max(), self.brows.max(initial=0))) + 1
