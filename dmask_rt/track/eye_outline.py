"""An eye as seen in an image, and what a clinician reads off it.

`EyeOutline` is the eye in image pixels: the two corners, the upper and lower lid
margins between them and the limbus (the iris boundary) as a circle. The same outline
describes the patient's eye (from the tracker and its refinement, or a hand label) and
the avatar's (its projected geometry), so both are read by one function in the same
units.

Frame of one eye: s runs along the corner axis a = (image-right corner - image-left
corner) / |...|, h along n = a turned 90 degrees towards the image bottom ("down" in a
face the right way up), both from the image-left corner. With W = |corner - corner|
(the fissure width), D = 2 r (the iris diameter, r the limbus radius), p the iris
centre and U(s), L(s) the margins' heights (piecewise linear through corner, margin
points, corner):

    MRD1   = (h_p - U(s_p)) / D        upper lid above the iris centre, iris diameters
    MRD2   = (L(s_p) - h_p) / D        lower lid below it
    place  = ((s_p - s_lat) / (s_med - s_lat),  h_p / W)
             the iris centre between the corners: 0 at the lateral corner, 1 at the
             medial one; and below the line through the corners, in fissure widths
    upper_mid = -U(W/2) / D            the upper lid above the line through the corners
    lower_mid = L(W/2) / D             and the lower lid below it, at the fissure's middle,
                                       iris diameters (the lids' shape beside MRD's place)
    opening = max_s (L(s) - U(s)) / W  the widest lid gap, in fissure widths
    width  = W / D                     the fissure's length in iris diameters
    shut    = opening < SHUT_OPENING
    scleral show above = MRD1 > 1/2 (the lid clears the top of the limbus), below = MRD2 > 1/2

MRD is measured from the iris centre, which is the pupil centre of a clinical MRD
within the precision of a video frame; lengths in iris diameters make the readings
independent of image scale and of the face they are read on, which is what lets the
avatar's generic eye show the patient's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .landmarks import CONTOUR_CORNERS, IRIS_START, FaceLandmarks

#: A widest lid gap under this fraction of the fissure width reads as shut: lids that meet
#: still leave the margins' own thickness between their tracked lines.
SHUT_OPENING = 0.06


@dataclass(frozen=True)
class EyeOutline:
    """One eye in image pixels (x right, y down).

    corners: (2, 2) lateral then medial corner.
    upper, lower: (n, 2), (m, 2) lid margin points strictly between the corners, in any
        order along the eye.
    iris_centre: (2,) centre of the limbus circle; iris_radius: its radius (> 0).
    """

    corners: np.ndarray
    upper: np.ndarray
    lower: np.ndarray
    iris_centre: np.ndarray
    iris_radius: float

    def to_dict(self) -> dict:
        return {
            "corners": np.asarray(self.corners, float).round(3).tolist(),
            "upper": np.asarray(self.upper, float).round(3).tolist(),
            "lower": np.asarray(self.lower, float).round(3).tolist(),
            "iris_centre": np.asarray(self.iris_centre, float).round(3).tolist(),
            "iris_radius": round(float(self.iris_radius), 3),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "EyeOutline":
        return cls(
            np.asarray(d["corners"], float).reshape(2, 2),
            np.asarray(d["upper"], float).reshape(-1, 2),
            np.asarray(d["lower"], float).reshape(-1, 2),
            np.asarray(d["iris_centre"], float).reshape(2),
            float(d["iris_radius"]),
        )


@dataclass(frozen=True)
class EyeReadings:
    """What a clinician reads off one eye (module docstring): lengths in iris diameters,
    places in fissure widths."""

    mrd1: float
    mrd2: float
    place_h: float
    place_v: float
    opening: float
    shut: bool
    width: float = math.nan
    upper_mid: float = math.nan
    lower_mid: float = math.nan

    @property
    def sclera_above(self) -> bool:
        return self.mrd1 > 0.5

    @property
    def sclera_below(self) -> bool:
        return self.mrd2 > 0.5


def eye_frame(corners: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(origin, a, n, W): the image-left corner, the unit corner axis, its downward normal, the width."""
    corners = np.asarray(corners, float)
    left, right = (corners[0], corners[1]) if corners[0, 0] <= corners[1, 0] else (corners[1], corners[0])
    axis = right - left
    width = float(np.hypot(axis[0], axis[1]))
    a = axis / max(width, 1e-9)
    return left, a, np.array([-a[1], a[0]]), width


def margin_profile(
    outline: EyeOutline, lid: str, frame: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(s, h) of the corner-margin-corner polyline of `lid` ("upper"/"lower"), sorted by s,
    in the outline's own eye frame or in `frame` = (origin, a, n) (another outline's)."""
    origin, a, n = frame if frame is not None else eye_frame(outline.corners)[:3]
    pts = np.concatenate([outline.corners[:1], getattr(outline, lid), outline.corners[1:]]) - origin
    s, h = pts @ a, pts @ n
    order = np.argsort(s, kind="stable")
    return s[order], h[order]


def read_eye(outline: EyeOutline) -> EyeReadings:
    """The clinical readings of one eye outline (module docstring)."""
    origin, a, n, width = eye_frame(outline.corners)
    rel = np.asarray(outline.iris_centre, float) - origin
    s_p, h_p = float(rel @ a), float(rel @ n)
    su, hu = margin_profile(outline, "upper")
    sl, hl = margin_profile(outline, "lower")
    diameter = max(2.0 * float(outline.iris_radius), 1e-6)  # a degenerate limbus must not raise
    upper_at, lower_at = float(np.interp(s_p, su, hu)), float(np.interp(s_p, sl, hl))
    lat, med = ((np.asarray(outline.corners, float) - origin) @ a)
    samples = np.linspace(0.0, width, 41)
    opening = float(np.max(np.interp(samples, sl, hl) - np.interp(samples, su, hu))) / max(width, 1e-9)
    return EyeReadings(
        mrd1=(h_p - upper_at) / diameter,
        mrd2=(lower_at - h_p) / diameter,
        place_h=(s_p - lat) / (med - lat) if med != lat else math.nan,
        place_v=h_p / max(width, 1e-9),
        opening=opening,
        shut=opening < SHUT_OPENING,
        width=width / diameter,
        upper_mid=-float(np.interp(0.5 * width, su, hu)) / diameter,
        lower_mid=float(np.interp(0.5 * width, sl, hl)) / diameter,
    )


def tracked_outlines(landmarks: FaceLandmarks) -> tuple[EyeOutline, EyeOutline]:
    """(right, left) eye outlines as the landmark models give them: corners and lid
    margins from the iris model's contour (lower lid 1..7, upper lid 9..15), the limbus
    from its five iris points (radius: mean distance of the four boundary points)."""
    outlines = []
    for e in range(2):
        contour = landmarks.eye_contours[e].astype(float)
        iris = landmarks.points[IRIS_START[e] : IRIS_START[e] + 5].astype(float)
        radius = float(np.linalg.norm(iris[1:] - iris[0], axis=1).mean())
        outlines.append(
            EyeOutline(contour[list(CONTOUR_CORNERS)], contour[9:16], contour[1:8], iris[0], radius)
        )
    return outlines[0], outlines[1]
