"""Eyelid position per eye, measured on the fitted model in the head frame.

Everything is computed from the fitted avatar, never from raw landmarks: the lid
margins are the model's vertices V = face.vertices(expression, lids, fissure) (head frame, mm:
x toward the image right, y down, z into the scene) and the pupil centre is the iris
centre of the fitted eyeball, P = C_e + rho d(theta, phi) (`model/eyeball.py`).
Distances are taken in the plane of the face (head-frame x, y; depth ignored), as a
clinician reads them on a frontal photograph.

For eye e with pupil centre P = (P_x, P_y):

    U(x), L(x)   the upper / lower lid margin heights (head-frame y), linearly
                 interpolated along the margin polyline corner, 7 lid vertices, corner
    MRD1         = P_y - U(P_x)          margin-reflex distance 1, pupil up to upper lid
    MRD2         = L(P_x) - P_y          margin-reflex distance 2, pupil down to lower lid
    fissure height = L(P_x) - U(P_x) = MRD1 + MRD2, taken at the pupil (the clinical
                 vertical palpebral fissure), not the maximum along the eye
    fissure width  = |corner_lateral - corner_medial| in the face plane (the patient's
                 length in iris diameters, as the eye transfer stretches it)
    openness     = fissure height / the same height on the template at rest
                   (expression 0, lids 0) at the same x: 1 = the average open eye,
                   0 = lids touching; with pure closure weights it is 1 - c_upper - c_lower
    eye rotation = the fitted angles in degrees (horizontal + = toward the image right,
                   i.e. the subject's left; vertical + = up)

Each length is given in mm and in iris diameters (length / 11.7 mm, the model's visible
iris diameter, configurable), which is how it compares with a photograph's scale.
MRD1 < 0 means the upper lid covers the pupil centre; the measures are NaN when the
pupil lies beyond the eye corners (cannot happen for gaze within about +-40 deg).

Trust. The numbers inherit the fit's accuracy. On synthetic frames 50 cm from a 640x480
webcam with 0.3 px landmark noise (tests/test_measure.py) the per-frame standard
deviation is about 0.22 mm for MRD1 and MRD2, 0.17 mm for the fissure height and 0.02
for openness, and each eye angle scatters by 1.1-1.3 degrees (which alone moves the
pupil centre vertically by about 0.2 mm); means over 30 frames are within 0.13 mm of
the truth. Lids and eye angles are fitted frame by frame without temporal smoothing, so
averages over a second or more are much steadier than single frames.

Where the eyeball sits. The eye rotations and lid closures measured here are set by
the eye transfer (`fit/eye_transfer.py`): the avatar's drawn eye reads, in iris
diameters and fissure fractions, as the patient's eye outline did (refined against the
pixels, `track/eye_refine.py`), so the millimetres are the patient's readings in iris
diameters times the model's 11.7 mm iris (measured on the frontal projection, which the
head-frame plane here equals for a frontal face). On the development clips the medians
over open-eye frames (openness > 0.3, both eyes) come out at MRD1 3.1-4.4 mm, MRD2
3.7-5.4 mm, fissure height 7.5-9.9 mm (p01, p02, p04): plausible, if on the low side of
adult norms (about 4-5, 5 and 9-10 mm; p04 looks down for much of her clip, which
lowers the lid).

Absolute millimetres rest on the generic face's scale (an average adult eye, iris
11.7 mm): the lid positions are the patient's own, relative to the patient's iris, so
an unusually large or small eye is scaled to the average.
The fissure width is the generic face's (its corners are fixed by the template: the
lid shapes never move them and expression barely does), useful as the scale reference,
not as a measurement of the patient. Comparisons between the two eyes and over time
are the more robust readings.
"""
from __future__ import annotations

import math

import numpy as np

from ..model.eyeball import IRIS_RADIUS_MM, iris_centre
from ..model.generic_face import GenericFace
from ..model.mesh_indices import EYE_CORNERS, LOWER_LID, UPPER_LID
from ..model.params import AvatarParams

#: Visible iris diameter of the model (mm): the unit of the "_iris" measures.
IRIS_DIAMETER_MM = 2 * IRIS_RADIUS_MM
EYE_SIDES = ("r", "l")  # eye 0 = the subject's right, as in AvatarParams.eyes


def margin_height(vertices: np.ndarray, eye: int, lid: np.ndarray, x: float) -> float:
    """Head-frame y of the lid margin at x: the polyline corner, lid vertices, corner, interpolated.

    NaN when x lies outside the corners' span.
    """
    chain = np.concatenate([[EYE_CORNERS[eye, 0]], lid[eye], [EYE_CORNERS[eye, 1]]])
    xs, ys = vertices[chain, 0], vertices[chain, 1]
    order = np.argsort(xs)  # lateral -> medial runs toward -x for one eye and +x for the other
    xs, ys = xs[order], ys[order]
    if not xs[0] <= x <= xs[-1]:
        return math.nan
    return float(np.interp(x, xs, ys))


def eyelid_measures(
    face: GenericFace, params: AvatarParams, iris_diameter_mm: float = IRIS_DIAMETER_MM
) -> dict[str, float]:
    """Per-eye lid and eye measures for one fitted frame, keyed `{measure}_{r|l}_{unit}`.

    Keys per eye s: mrd1_s_mm, mrd2_s_mm, fissure_height_s_mm, fissure_width_s_mm, each
    also as _iris (divided by `iris_diameter_mm`), openness_s, and
    eye_s_horizontal_deg / eye_s_vertical_deg (as in AvatarParams.to_dict()).
    """
    vertices = face.vertices(params.expression, params.lids, params.fissure)
    out: dict[str, float] = {}
    for e, s in enumerate(EYE_SIDES):
        theta, phi = params.eyes[e]
        pupil = iris_centre(face.eye_centres[e], theta, phi)
        x = float(pupil[0])
        upper = margin_height(vertices, e, UPPER_LID, x)
        lower = margin_height(vertices, e, LOWER_LID, x)
        rest_height = margin_height(face.mean, e, LOWER_LID, x) - margin_height(face.mean, e, UPPER_LID, x)
        corners = vertices[EYE_CORNERS[e], :2]
        lengths = {
            "mrd1": pupil[1] - upper,
            "mrd2": lower - pupil[1],
            "fissure_height": lower - upper,
            "fissure_width": np.linalg.norm(corners[0] - corners[1]),
        }
        for name, mm in lengths.items():
            out[f"{name}_{s}_mm"] = float(mm)
            out[f"{name}_{s}_iris"] = float(mm) / iris_diameter_mm
        out[f"openness_{s}"] = (lower - upper) / rest_height
        out[f"eye_{s}_horizontal_deg"] = math.degrees(theta)
        out[f"eye_{s}_vertical_deg"] = math.degrees(phi)
    return out
