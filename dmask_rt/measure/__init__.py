"""Ocular measurements from the fitted avatar model, per frame and over time.

- `eyelids.eyelid_measures`: MRD1, MRD2, palpebral fissure height and width (mm and
  iris diameters), openness and eye rotation, per eye, for one frame.
- `alignment.alignment_measures`: right-minus-left difference, the convergence that
  fixating the camera needs, the deviation beyond it (degrees, prism dioptres) and
  MRD1 asymmetry.
- `frame.frame_measures` / `MEASURE_NAMES`: both as one flat row for the parameter log.
- `blinks.lid_events`: blinks, winks and long closures with hysteresis.
- `nystagmus.nystagmus_windows`: rhythmic eye oscillation in sliding windows.
- `series.MeasureSeries`: accumulates frames with timestamps and summarises a session.
- `report.format_summary`: that summary as plain text.
"""
from .alignment import alignment_measures, prism_dioptres
from .blinks import LidEvent, blink_rate_per_minute, lid_events
from .eyelids import IRIS_DIAMETER_MM, eyelid_measures
from .frame import MEASURE_NAMES, frame_measures
from .nystagmus import NystagmusWindow, nystagmus_windows
from .report import format_summary
from .series import MeasureSeries, nystagmus_verdict

__all__ = [
    "IRIS_DIAMETER_MM", "MEASURE_NAMES", "LidEvent", "MeasureSeries", "NystagmusWindow",
    "alignment_measures", "blink_rate_per_minute", "eyelid_measures", "format_summary", "frame_measures",
    "lid_events", "nystagmus_verdict", "nystagmus_windows", "prism_dioptres",
]
