"""Offscreen rendering of the avatar (face, eyeballs behind the lids) and the no-face frame."""
from dmask_rt.render.placeholder import placeholder_frame
from dmask_rt.render.renderer import AvatarRenderer, EyeballPose
from dmask_rt.model.topology import FaceTopology

__all__ = ["AvatarRenderer", "EyeballPose", "FaceTopology", "placeholder_frame"]
