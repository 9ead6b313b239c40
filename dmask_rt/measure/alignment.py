"""Between the two eyes: ocular deviation and lid asymmetry for one fitted frame.

With theta_r, theta_l the eyes' horizontal angles and phi_r, phi_l their vertical ones
(degrees, from the fitted model; horizontal + = toward the image right, vertical + = up):

    difference            theta_r - theta_l,  phi_r - phi_l   (right minus left)
    common gaze           g_h = (theta_r + theta_l) / 2,  g_v = (phi_r + phi_l) / 2

Signs of the difference: horizontal > 0 means the eyes converge (the right eye is
turned toward the image right = toward the nose, relative to the left): eso direction;
< 0 diverge: exo direction. Vertical > 0 means the right eye sits higher (right hyper).

Normal eyes converge on a near target, and in a video call the target (the screen) is
about as far as the camera. So the deviation is measured from fixating the camera: with
C_e each eyeball's centre and c = -R^T t the camera's centre in the head frame (R, t
the fitted head pose), the direction v_e = c - C_e gives the angles at which eye e
would look straight into the camera,

    theta_cam_e = atan2(v_x, -v_z),   phi_cam_e = atan2(-v_y, sqrt(v_x^2 + v_z^2)),

(`fixation_angles`, the same for any point, e.g. a target on the screen: `exam/geometry.py`),
the convergence that fixation needs is  vergence = theta_cam_r - theta_cam_l  (about 7
degrees at 50 cm, 63 mm between the eyes), and

    deviation (between the eyes)   D_a = (a_r - a_cam_r) - (a_l - a_cam_l)  for axis a
    per-eye deviation              each eye's share, (a_e - a_cam_e) minus the mean of
                                   that over both eyes (the two are opposite: D_a / 2)
    prism dioptres                 PD = 100 tan(angle)

For the horizontal axis D = difference - vergence; vertically the two eyes see the
camera at the same height, so D is the difference. The distance comes from the fit, and
so from the assumed camera field of view (`model/camera.py`: focal length = the larger
image side, a 53-degree horizontal view): a wider-angle webcam places the face nearer
than the fit does, so the vergence is under-estimated (by about a third at 70 degrees).
It also assumes the patient looks at the screen; a patient looking into the distance
has no convergence and reads as divergent by the vergence.

Trust. On synthetic frames at 50 cm with 0.3 px landmark noise (tests/test_measure.py)
each eye angle scatters by about 1.1-1.3 degrees per frame and the difference by about
1.9; the mean over 60 frames recovers a 10-degree squint within 1 degree. On real faces
the absolute horizontal deviation is much less certain, because the model reads where
the iris sits between the eye corners, and that differs between people: on the nine
development clips (normal eyes) the median horizontal deviation spans -18 to +10
degrees (the difference alone -5 to +21). It is worst on clips cropped from unknown
cameras, whose distance the fit cannot know (p04, p05, p08: -12 to -18), and on p01
(+10), whose epicanthal folds cover the inner eye corners so that the irises seem to
sit nasally: the "pseudo-esotropia" that misleads observers too (his corneal reflexes
are centred). The other five read -3.5 to +5.4 (p02, p03, p06, p07, p09). A corneal-reflex (Hirschberg) reading would not do better at webcam
resolution: with an iris 12-24 px across, one pixel of reflex is about 6-12 degrees
(measured on the same clips: reflex differences of -0.8 to +0.7 mm between the eyes). A
steady horizontal deviation under about 15 degrees is therefore not by itself a squint.
What is reliable is how the deviation behaves as the common gaze moves (p01: on a
64-degree gaze swing it changed by 4.6 degrees, slope -0.07, where one eye not moving
at all would give a slope of +-2), how it changes over time (an intermittent squint),
and the vertical deviation (the dev clips read -2.1 to +2.2 degrees).

Lid asymmetry: MRD1 right minus left (mm), > 0 = the right upper lid sits higher
(or the left droops).
"""
from __future__ import annotations

import math

import numpy as np

from ..model.generic_face import GenericFace
from ..model.params import AvatarParams

AXES = ("horizontal", "vertical")


def prism_dioptres(angle_deg: float) -> float:
    """PD = 100 tan(angle): centimetres of displacement at one metre."""
    return 100.0 * math.tan(math.radians(angle_deg))


def fixation_angles(face: GenericFace, rotation: np.ndarray, translation: np.ndarray, point: np.ndarray) -> np.ndarray:
    """(..., 2, 2) [eye][horizontal, vertical] degrees at which each eye would look at `point`.

    `point` (..., 3) is in the camera frame (mm); the head pose R (..., 3, 3), t (..., 3)
    may carry leading batch dimensions (frames, draws). In the head frame the point is
    p = R^T (point - t) and each eye's direction to it v_e = p - C_e, whose angles follow
    the avatar's convention (`model/eyeball.py`): theta = atan2(v_x, -v_z),
    phi = atan2(-v_y, sqrt(v_x^2 + v_z^2)).
    """
    p = np.einsum("...ji,...j->...i", rotation, np.asarray(point, float) - translation)
    v = p[..., None, :] - face.eye_centres  # (..., 2, 3) eyeball centre -> point, head frame
    horizontal = np.arctan2(v[..., 0], -v[..., 2])
    vertical = np.arctan2(-v[..., 1], np.hypot(v[..., 0], v[..., 2]))
    return np.degrees(np.stack([horizontal, vertical], axis=-1))


def camera_fixation_angles(face: GenericFace, params: AvatarParams) -> np.ndarray:
    """(2, 2) [eye][horizontal, vertical] degrees at which each eye would look into the camera
    (`fixation_angles` of the camera's centre, the camera frame's origin)."""
    return fixation_angles(face, params.rotation, params.translation, np.zeros(3))


def alignment_measures(face: GenericFace, params: AvatarParams, eyelids: dict[str, float]) -> dict[str, float]:
    """Difference, vergence, deviation (deg and PD) and MRD1 asymmetry (module docstring).

    `eyelids` is `eyelid_measures` of the same frame (only mrd1_r_mm / mrd1_l_mm are read).
    Keys: gaze_{axis}_deg, difference_{axis}_{deg|pd}, vergence_deg,
    deviation_{axis}_{deg|pd}, deviation_{r|l}_{axis}_{deg|pd}, mrd1_asymmetry_mm.
    """
    fixation = camera_fixation_angles(face, params)
    out: dict[str, float] = {"vergence_deg": float(fixation[0, 0] - fixation[1, 0])}
    for a, axis in enumerate(AXES):
        right, left = (math.degrees(params.eyes[e, a]) for e in range(2))
        out[f"gaze_{axis}_deg"] = (right + left) / 2
        out[f"difference_{axis}_deg"] = right - left
        out[f"difference_{axis}_pd"] = prism_dioptres(right - left)
        off_r, off_l = right - fixation[0, a], left - fixation[1, a]
        out[f"deviation_{axis}_deg"] = off_r - off_l
        out[f"deviation_{axis}_pd"] = prism_dioptres(off_r - off_l)
        for side, off in (("r", off_r), ("l", off_l)):
            share = off - (off_r + off_l) / 2
            out[f"deviation_{side}_{axis}_deg"] = share
            out[f"deviation_{side}_{axis}_pd"] = prism_dioptres(share)
    out["mrd1_asymmetry_mm"] = eyelids["mrd1_r_mm"] - eyelids["mrd1_l_mm"]
    return out
