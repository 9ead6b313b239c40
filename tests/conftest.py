"""Shared test fixtures and helpers.

Real footage lives outside the repository in ``../shared/data`` (see its README);
tests read it from there and never copy it in.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def video_frames(path: Path | str, step: int = 1) -> Iterator[np.ndarray]:
    """Every ``step``-th frame of the video at ``path`` as an RGB uint8 (H, W, 3) array."""
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % step == 0:
                yield frame.to_ndarray(format="rgb24")
