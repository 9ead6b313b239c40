"""Face landmark tracking with MediaPipe's face models, run without mediapipe."""

from .landmarks import FaceLandmarks
from .tracker import FaceTracker

__all__ = ["FaceLandmarks", "FaceTracker"]
