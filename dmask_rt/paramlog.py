"""Per-frame parameter log: one row per frame, as JSON Lines or CSV by file extension.

Every row has the same flat keys, so both formats load as the same table:
`frame` (index), `time` (seconds, the input's timestamp), `face_found`, then one
column per `Masker.PARAM_NAMES` entry, null (JSON) or empty (CSV) without a face.
Like the video, the file appears only when the job succeeds; `read_params` reads either back.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from .video.outfile import AtomicFile, AtomicOutput, check_output_path

SUFFIXES = (".jsonl", ".csv")
FIXED_COLUMNS = ("frame", "time", "face_found")


def check_params_path(path: str | os.PathLike[str]) -> Path:
    """Validate a parameter-log path (extension and writable directory) before any work."""
    return check_output_path(path, SUFFIXES)


class ParamLog(AtomicOutput):
    """Writes one row per frame; the format follows the suffix (.jsonl or .csv)."""

    def __init__(self, path: str | os.PathLike[str], param_names: Sequence[str]) -> None:
        self.path = check_params_path(path)
        clash = set(FIXED_COLUMNS) & set(param_names)
        if clash:
            raise ValueError(f"parameter names clash with the log's own columns: {sorted(clash)}")
        self.columns = (*FIXED_COLUMNS, *param_names)
        self._param_names = frozenset(param_names)
        self._file = AtomicFile(self.path)
        self._out = open(self._file.tmp, "w", encoding="utf-8", newline="")
        self._csv = None
        if self.path.suffix.lower() == ".csv":
            self._csv = csv.writer(self._out)
            self._csv.writerow(self.columns)

    def write(self, index: int, time: float, face_found: bool, params: Mapping[str, float] | None) -> None:
        """Append the row of one frame; `params` is None when no face was found."""
        params = params or {}
        unknown = params.keys() - self._param_names
        if unknown:
            raise ValueError(f"parameters not in PARAM_NAMES: {sorted(unknown)}")
        row = {"frame": index, "time": round(time, 6), "face_found": bool(face_found)}
        row.update((name, _number(params.get(name))) for name in self.columns[len(FIXED_COLUMNS):])
        if self._csv is None:
            self._out.write(json.dumps(row, allow_nan=False) + "\n")
        else:
            row["face_found"] = str(row["face_found"]).lower()  # true/false, as in JSON
            self._csv.writerow("" if v is None else v for v in row.values())

    @property
    def tmp(self) -> Path:
        """The hidden file the rows go to until `close()`."""
        return self._file.tmp

    def flush(self) -> None:
        """Hand the rows written so far to the system: a crash of this process then loses none."""
        self._out.flush()

    def close(self) -> None:
        """Finish the file and move it to its final path."""
        self._out.close()
        self._file.commit()

    def abort(self) -> None:
        """Drop the log; nothing appears at the final path."""
        self._out.close()
        self._file.discard()



def _number(value: float | None) -> float | None:
    # numpy scalars are not JSON-serialisable, and NaN/inf are not valid JSON: both become plain.
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None



class ParamLogError(ValueError):
    """A parameter log that cannot be read; the message is one line for the user."""


def read_params(path: str | os.PathLike[str]) -> list[dict]:
    """The rows of a parameter log (.jsonl or .csv, as ParamLog writes them): numbers as floats,
    `frame` as int, `face_found` as bool, None where empty. Raises ParamLogError (or OSError)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ParamLogError(f"{path}: unsupported extension {suffix or '(none)'!r}, use {' or '.join(SUFFIXES)}")
    rows = []
    with open(path, encoding="utf-8", newline="") as f:
        if suffix == ".jsonl":
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ParamLogError(f"{path}, line {n}: not JSON ({err.msg})") from None
                rows.append(_checked(row, path, n))
        else:
            for n, row in enumerate(csv.DictReader(f), 2):
                face = row.get("face_found")
                try:
                    values = {k: (None if v == "" else float(v)) for k, v in row.items() if k != "face_found"}
                except ValueError:
                    raise ParamLogError(f"{path}, line {n}: a value is not a number") from None
                rows.append(_checked(values | {"face_found": face == "true"}, path, n))
    return rows


def _checked(row: object, path: Path, n: int) -> dict:
    """A row with its fixed columns typed; ParamLogError when they are missing."""
    if not isinstance(row, dict) or not isinstance(row.get("time"), (int, float)) or row.get("frame") is None:
        raise ParamLogError(f"{path}, line {n}: not a parameter row (needs frame, time, face_found)")
    return row | {"frame": int(row["frame"]), "time": float(row["time"]), "face_found": bool(row.get("face_found"))}
