"""The exam record the live side writes, read and checked before any analysis.

    {"format": "dmask-exam", "version": 1, "started": ISO time (display only),
     "protocol": protocol_json() at the time, "screen": {width_px, height_px, mm_per_px,
     mm_per_px_source, camera_x_mm, camera_y_mm, camera_source} or None (not reported yet),
     "steps": [{index, name, start_s, end_s, status}], "params_file": name beside the record}

`check_record` raises RecordError with one line naming the first problem, so that the
CLI can refuse bad input before writing anything.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

FORMAT = "dmask-exam"
VERSION = 1


class RecordError(ValueError):
    """An exam record that cannot be analysed; the message is one line for the user."""


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_record(record: object) -> dict:
    """`record` if it is an exam record the analysis can use (module docstring), else RecordError."""
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise RecordError(f"not an exam record (format is not {FORMAT!r})")
    if record.get("version") != VERSION:
        raise RecordError(f"exam record version {record.get('version')!r}, this analysis reads version {VERSION}")
    screen = record.get("screen")  # None until the patient's page reports it
    if screen is not None:
        if not isinstance(screen, dict):
            raise RecordError("exam record: 'screen' must be an object")
        for key in ("width_px", "height_px", "mm_per_px"):
            if not _number(screen.get(key)) or screen[key] <= 0:
                raise RecordError(f"exam record: screen.{key} must be a positive number")
    steps = record.get("steps")
    if not isinstance(steps, list) or not all(isinstance(s, dict) for s in steps):
        raise RecordError("exam record: 'steps' must be a list of step runs")
    for s in steps:
        done = s.get("status") == "done"
        if (not _number(s.get("start_s")) or (done and not _number(s.get("end_s")))
                or ("name" not in s and "index" not in s)):
            raise RecordError(f"exam record: step run {s!r} needs a name or index, start_s and (when done) end_s")
    protocol = record.get("protocol")
    if protocol is not None and not (isinstance(protocol, list) and all(isinstance(p, dict) and "path" in p for p in protocol)):
        raise RecordError("exam record: 'protocol' must be a list of steps")
    return record


def read_record(path: str | os.PathLike[str]) -> dict:
    """The checked exam record at `path`; RecordError (or OSError) when it cannot be used."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise RecordError(f"{path}: not JSON ({err.msg}, line {err.lineno})") from None
    except UnicodeDecodeError:
        raise RecordError(f"{path}: not a text file") from None
    try:
        return check_record(record)
    except RecordError as err:
        raise RecordError(f"{path}: {err}") from None
