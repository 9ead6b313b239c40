"""The avatar's fixed colours (8-bit RGB), identical for every patient.

Nothing here derives from input pixels: the rendered frame carries no patient colour.
"""
from __future__ import annotations

BACKGROUND_RGB = (128, 140, 156)     # calm mid grey-blue, also the placeholder's ground
PLACEHOLDER_TEXT_RGB = (236, 239, 243)
SKIN_RGB = (214, 178, 158)           # one neutral skin tone
SOCKET_RGB = (150, 78, 88)           # dark pink seen in the eye opening around the eyeball
MOUTH_RGB = (66, 28, 34)             # mouth interior
LASH_RGB = (62, 44, 40)              # lash line along the lid margins (not as dark as the pupil)
LASH_LINE_RGB = (50, 35, 30)         # the upper lids' crisper lash line (lighter than the pupil)
BROW_RGB = (70, 52, 44)              # brows: dark brown
CARUNCLE_RGB = (200, 120, 120)       # the pink caruncle in the inner eye corner
SCLERA_RGB = (240, 237, 230)
IRIS_RGB = (84, 56, 40)              # brown, as most irises: MediaPipe reads it better than blue-grey
PUPIL_RGB = (8, 8, 10)


def unit_rgb(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    """8-bit RGB -> floats in [0, 1] for shader uniforms."""
    return (rgb[0] / 255.0, rgb[1] / 255.0, rgb[2] / 255.0)
