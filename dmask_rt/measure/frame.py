"""All per-frame ocular measures of one fitted frame, as one flat record.

`all_measures` joins `eyelids.eyelid_measures` and `alignment.alignment_measures`;
`frame_measures` keeps the MEASURE_NAMES of it, in that fixed order, leaving out the eye
angles, which `AvatarParams.to_dict()` already holds under the same names, so the two
dicts can be merged into one parameter-log row.
"""
from __future__ import annotations

from ..model.generic_face import GenericFace
from ..model.params import AvatarParams
from .alignment import AXES, alignment_measures
from .eyelids import EYE_SIDES, IRIS_DIAMETER_MM, eyelid_measures

LENGTHS = ("mrd1", "mrd2", "fissure_height", "fissure_width")  # each in _mm and _iris

MEASURE_NAMES: tuple[str, ...] = (
    tuple(f"{m}_{s}_{u}" for s in EYE_SIDES for m in LENGTHS for u in ("mm", "iris"))
    + tuple(f"openness_{s}" for s in EYE_SIDES)
    + tuple(f"gaze_{a}_deg" for a in AXES)
    + tuple(f"difference_{a}_{u}" for a in AXES for u in ("deg", "pd"))
    + ("vergence_deg",)
    + tuple(f"deviation_{a}_{u}" for a in AXES for u in ("deg", "pd"))
    + tuple(f"deviation_{s}_{a}_{u}" for s in EYE_SIDES for a in AXES for u in ("deg", "pd"))
    + ("mrd1_asymmetry_mm",)
)


def all_measures(
    face: GenericFace, params: AvatarParams, iris_diameter_mm: float = IRIS_DIAMETER_MM
) -> dict[str, float]:
    """Every per-eye and between-eye value for one fitted frame, the eye angles included."""
    eyelids = eyelid_measures(face, params, iris_diameter_mm)
    return {**eyelids, **alignment_measures(face, params, eyelids)}


def frame_measures(
    face: GenericFace, params: AvatarParams, iris_diameter_mm: float = IRIS_DIAMETER_MM
) -> dict[str, float]:
    """Every MEASURE_NAMES value for one fitted frame (lengths in mm and iris diameters, angles in deg/PD)."""
    merged = all_measures(face, params, iris_diameter_mm)
    return {name: merged[name] for name in MEASURE_NAMES}
