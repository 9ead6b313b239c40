"""A room's guided eye examination: the doctor starts it, the patient's page shows the
targets and times the steps, this module keeps the frames of each step and its figures.

Messages on the rooms' data channels (JSON, `"type": "exam"`):

    doctor  -> room     {"action": "start"} | {"action": "stop"} | {"action": "repeat", "steps": [i, ...]}
    room    -> patient  {"action": "start", "protocol": [...], "steps": [i, ...]} | {"action": "stop"}
    patient -> room     {"event": "screen", "width_px", "height_px", "mm_per_px", "mm_per_px_source",
                         "camera_x_mm", "camera_y_mm", "camera_source"}
                        {"event": "step", "index": i}        the target of step i is showing from now
                        {"event": "step_done", "index": i}   step i ran its full time
                        {"event": "pause"} | {"event": "resume"} | {"event": "stop"} | {"event": "done"}
                        {"event": "too_small", "width_px", "height_px"}
    room    -> doctor   {"state", "step", "steps_total", "message", "results", "files"}

The patient's page is the exam's clock (it shows the target, and the patient may pause):
its messages carry the page's own time `t` (seconds), which is mapped onto the relay's
clock by the smallest (arrival - t) seen so far, i.e. by the least delayed message: a
message held up by the network or a busy relay does not shift its step. Frames are timed
by their camera frame's arrival at the relay. Each step's first `settle_s` seconds are
left out of its figures (`dmask_rt/exam/protocol.py`), which covers the rest. A paused
step is shown again from its start when the patient continues.

Frames are kept (their fitted parameters, never pixels) from the exam's start to its end.
After every step the figures are computed again on a thread (`dmask_rt.exam.analysis`) and
sent to the doctor, after the record (`exam-<time>.json`) and its frames (`.params.jsonl`,
as `dmask mask --params`) as they stand are written into the room's recordings directory:
a crash mid-exam keeps every finished step. When the exam ends -- done, stopped by either
side, the patient gone, the room closed -- the results (`.results.json`) and the report
(`.report.html`) join them; `dmask exam` recomputes the last two from the first two.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dmask_rt.exam.live import calibrated_values, eye_model
from dmask_rt.exam.protocol import STEPS, protocol_json
from dmask_rt.paramlog import ParamLog
from dmask_rt.pipeline import Masker
from dmask_rt.video.outfile import AtomicFile

from .media import Masked

log = logging.getLogger(__name__)

#: Screen facts a page may report, with their sane ranges (anything else is refused).
SCREEN_RANGES = {
    "width_px": (50.0, 20000.0), "height_px": (50.0, 20000.0), "mm_per_px": (0.01, 5.0),
    "camera_x_mm": (-1000.0, 1000.0), "camera_y_mm": (-1000.0, 1000.0),
}
SOURCES = {"mm_per_px_source": ("card", "assumed"), "camera_source": ("confirmed", "assumed")}
#: At most this many frames are kept (an hour at 30 fps): an exam left open ends there.
MAX_FRAMES = 108_000
#: At most this many step runs are kept (a page repeats and interrupts steps, but not a
#: thousand times): a page flooding "step" events cannot grow the record without bound.
MAX_RUNS = 1000
#: The page's clock (`performance.now()` in seconds) is in [0, this]; any other `t` is
#: ignored, so no page can push the record's times to +-inf (1e308 + 1e308).
MAX_PAGE_TIME_S = 1e7
LIVE_DRAWS = 50  # Monte Carlo draws of the figures after each step (the saved ones: analysis' default)

Send = Callable[[str, dict[str, Any]], None]


class RoomExam:
    """The exam of one room: its state, record, frames and figures."""

    def __init__(self, directory: Path, send: Send, clock: Callable[[], float] = time.monotonic) -> None:
        self.directory = directory
        self._send = send
        self._clock = clock
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dmask-exam")
        self.state = "idle"          # idle | waiting | running | paused | done | stopped
        self.message = ""
        self.record: dict[str, Any] | None = None
        self.rows: list[dict[str, Any]] = []
        self.results: dict[str, Any] | None = None
        self.files: list[str] = []
        self.model: dict[str, Any] | None = None  # the last exam's eye model, applied to later frames
        self._t0 = 0.0
        self._current: dict[str, Any] | None = None  # the step run in progress
        self._runs: list[dict[str, Any]] = []  # every step run, in the page's clock
        self._page_offset = math.inf  # relay clock - page clock, least delayed message
        self._analysis: asyncio.Task[None] | None = None
        self._saving: asyncio.Task[None] | None = None

    # --- the doctor ----------------------------------------------------------------------
    def doctor(self, message: dict[str, Any]) -> None:
        action = message.get("action")
        if action == "start" and self.state not in ("waiting", "running", "paused"):
            self._begin(list(range(len(STEPS))))
        elif action == "repeat" and self.state in ("done", "stopped") and self.record is not None:
            asked = message.get("steps")
            steps = [i for i in asked if _is_index(i)] if isinstance(asked, list) else []
            if steps:
                self.state, self.message = "waiting", "Waiting for the patient to begin the repeated steps."
                self._send("patient", {"type": "exam", "action": "start", "protocol": protocol_json(), "steps": steps})
        elif action == "stop" and self.state in ("waiting", "running", "paused"):
            self._send("patient", {"type": "exam", "action": "stop"})
            self._finish("stopped", "Stopped by the doctor.")
        self.tell_doctor()

    def _begin(self, steps: list[int]) -> None:
        self._t0 = self._clock()
        stamp = base = time.strftime("%Y%m%d-%H%M%S")
        n = 0
        while (self.directory / f"exam-{stamp}.json").exists():  # two exams in one second
            n += 1
            stamp = f"{base}-{n}"
        self.record = {
            "format": "dmask-exam", "version": 1,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "protocol": protocol_json(), "screen": None,
            "params_file": f"exam-{stamp}.params.jsonl",
        }
        self.rows, self.results, self.files, self._current, self._runs = [], None, [], None, []
        self._page_offset = math.inf
        self.state, self.message = "waiting", "Waiting for the patient to begin."
        self._send("patient", {"type": "exam", "action": "start", "protocol": protocol_json(), "steps": steps})

    # --- the patient ---------------------------------------------------------------------
    def patient(self, message: dict[str, Any]) -> None:
        if self.record is None or self.state not in ("waiting", "running", "paused"):
            return
        event = message.get("event")
        now = self._page_time(message.get("t"), self._now())
        if event == "screen":
            screen = _screen(message)
            if screen is not None:
                self.record["screen"] = screen
        elif event == "step" and _step_index(message) is not None and len(self._runs) < MAX_RUNS:
            self._end_run("interrupted", now)
            index = _step_index(message)
            self._current = {"index": index, "name": STEPS[index].name, "start_s": now, "end_s": None, "status": "running"}
            self._runs.append(self._current)
            self.state, self.message = "running", f"Step {index + 1} of {len(STEPS)}: {STEPS[index].label}."
        elif event == "step_done" and self._current is not None and message.get("index") == self._current["index"]:
            self._end_run("done", now)
            self._analyse()
        elif event == "pause":
            self._end_run("interrupted", now)
            self.state, self.message = "paused", "Paused by the patient."
        elif event == "resume":
            self.state, self.message = "running", "The patient continued."
        elif event == "too_small":
            self.message = (f"The patient's window is too small for the targets "
                            f"({_int(message.get('width_px'))} x {_int(message.get('height_px'))} px): "
                            "they were asked to enlarge it.")
        elif event == "stop":
            self._finish("stopped", "Stopped by the patient.", now)
        elif event == "done":
            self._finish("done", "Examination complete.", now)
        self.tell_doctor()

    def patient_left(self) -> None:
        """The patient's connection went: keep what was measured."""
        if self.state in ("running", "paused"):
            self._finish("stopped", "The patient left during the examination; what was measured is kept.")
            self.tell_doctor()

    # --- frames ------------------------------------------------------------------------
    def on_masked(self, masked: Masked) -> None:
        """Keep one published frame's parameters (event loop) while the exam runs."""
        if self.state not in ("running", "paused") or len(self.rows) >= MAX_FRAMES:
            return
        # Timed by its camera frame's arrival: the nearest the relay knows to its capture.
        row: dict[str, Any] = {"frame": len(self.rows), "time": round(masked.received - self._t0, 4), "face_found": masked.face_found}
        row.update(dict.fromkeys(Masker.PARAM_NAMES) if masked.params is None else masked.params)
        self.rows.append(row)

    # --- figures and files ----------------------------------------------------------------
    def _now(self) -> float:
        return self._clock() - self._t0

    def _page_time(self, t: Any, now: float) -> float:
        """The page's time `t` in the exam's clock (page clock; `now` when the page gave none)."""
        if not isinstance(t, (int, float)) or isinstance(t, bool) or not 0 <= t <= MAX_PAGE_TIME_S:
            return now  # also NaN; and no math.isfinite(), which raises on an int beyond float
        self._page_offset = min(self._page_offset, now - t)
        return float(t)

    def _offset(self) -> float:
        return 0.0 if math.isinf(self._page_offset) else self._page_offset

    def _end_run(self, status: str, at: float) -> None:
        if self._current is not None:
            self._current["end_s"], self._current["status"] = at, status
            self._current = None

    def record_now(self) -> dict[str, Any]:
        """The record as saved: the steps' times moved from the page's clock to the exam's."""
        assert self.record is not None
        offset = self._offset()
        steps = [{**run, "start_s": round(run["start_s"] + offset, 3),
                  "end_s": None if run["end_s"] is None else round(run["end_s"] + offset, 3)} for run in self._runs]
        return json.loads(json.dumps({**self.record, "steps": steps}))

    def _analyse(self) -> None:
        if self._analysis is None or self._analysis.done():
            self._analysis = asyncio.ensure_future(self._compute())

    async def _compute(self) -> None:
        record, rows = self.record_now(), list(self.rows)
        loop = asyncio.get_running_loop()
        try:
            # What was measured so far goes to disk first: a crash of this process keeps it.
            await loop.run_in_executor(self._executor, _write_measured, self.directory, record, rows)
            self.results = await loop.run_in_executor(self._executor, _analyse, record, rows)
        except Exception:  # noqa: BLE001 - figures failing must not end the consultation
            log.exception("exam analysis failed")
        self.tell_doctor()

    def _finish(self, state: str, message: str, at: float | None = None) -> None:
        """End the exam (`at`: in the page's clock, when the page said so) and save it."""
        self._end_run("stopped" if state == "stopped" else "done", self._now() - self._offset() if at is None else at)
        self.state, self.message = state, message
        if self.record is not None:
            self._saving = asyncio.ensure_future(self._save())

    async def _save(self) -> None:
        record, rows = self.record_now(), list(self.rows)
        loop = asyncio.get_running_loop()
        try:
            self.results, self.files = await loop.run_in_executor(self._executor, _save, self.directory, record, rows)
            self.model = eye_model(self.results) or self.model
        except Exception:  # noqa: BLE001
            log.exception("saving the exam failed")
            self.message += " Saving the results failed: see the relay's log."
        self.tell_doctor()

    def calibrated(self, values: dict[str, float] | None) -> dict[str, float]:
        """This frame's angles and deviation in the last exam's calibrated frame (`exam/live.py`),
        or nothing before a calibrated exam."""
        if self.model is None or values is None:
            return {}
        return calibrated_values(self.model, values)

    def tell_doctor(self) -> None:
        self._send("doctor", {
            "type": "exam", "state": self.state, "message": self.message,
            "step": self._current["index"] if self._current else None, "steps_total": len(STEPS),
            "results": live_view(self.results), "files": self.files,
        })

    async def close(self) -> None:
        """The room is closing: an exam in progress ends, and its files are written."""
        if self.state in ("waiting", "running", "paused"):
            self._finish("stopped", "The consultation ended during the examination.")
        if self._saving is not None:
            await self._saving
        self._executor.shutdown(wait=False)


def live_view(results: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the doctor's panel shows of the results (a tenth of their size: one data-channel
    message): each step's status, the nine-gaze chart, the findings and the warnings."""
    if results is None:
        return None
    cells = {
        position: {"status": cell["status"], "reason": cell["reason"],
                   "deviation": cell["deviation"] and {k: cell["deviation"][k] for k in ("horizontal_pd", "vertical_pd", "words")}}
        for position, cell in results["nine_gaze"].items()
    }
    return {
        "steps": [{k: step[k] for k in ("index", "name", "label", "status", "reason")} for step in results["steps"]],
        "nine_gaze": cells, "findings": results["findings"],
        "calibrated": results["calibration"]["deviation_calibrated"],
        "warnings": results["summary"]["warnings"],
    }


def _analyse(record: dict[str, Any], rows: list[dict[str, Any]], final: bool = False) -> dict[str, Any]:
    """The figures: after each step a quick pass (fewer uncertainty draws, no traces: it
    shares the room's process with the masking), at the end the full one that is saved."""
    from dmask_rt.exam.analysis import analyse

    return analyse(record, rows) if final else analyse(record, rows, draws=LIVE_DRAWS, traces=False)


def _write_measured(directory: Path, record: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    """Write the record and its frames as they stand (each file appears complete or not at all)."""
    directory.mkdir(parents=True, exist_ok=True)
    log_ = ParamLog(directory / record["params_file"], Masker.PARAM_NAMES)
    with log_:
        for row in rows:
            params = None if not row["face_found"] else {k: row[k] for k in Masker.PARAM_NAMES}
            log_.write(row["frame"], row["time"], row["face_found"], params)
    name = record["params_file"].removesuffix(".params.jsonl") + ".json"
    _write_text(directory / name, json.dumps(record, indent=1))
    return [record["params_file"], name]


def _save(directory: Path, record: dict[str, Any], rows: list[dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """Write the record, its frames, results and report."""
    from dmask_rt.exam.report import report_html

    names = _write_measured(directory, record, rows)
    stem = record["params_file"].removesuffix(".params.jsonl")
    results = _analyse(record, rows, final=True)
    texts = {
        f"{stem}.results.json": json.dumps(results, indent=1, allow_nan=False),
        f"{stem}.report.html": report_html(results, record),
    }
    for name, text in texts.items():
        _write_text(directory / name, text)
    return results, [*names, *texts]


def _write_text(path: Path, text: str) -> None:
    out = AtomicFile(path)
    try:
        out.tmp.write_text(text, encoding="utf-8")
    except BaseException:
        out.discard()
        raise
    out.commit()


def _screen(message: dict[str, Any]) -> dict[str, Any] | None:
    screen: dict[str, Any] = {}
    for key, (low, high) in SCREEN_RANGES.items():
        value = message.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
            return None  # NaN and inf fail the range too; math.isfinite() would raise on 10**400
        screen[key] = float(value)
    for key, allowed in SOURCES.items():
        if message.get(key) not in allowed:
            return None
        screen[key] = message[key]
    return screen


def _is_index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(STEPS)


def _step_index(message: dict[str, Any]) -> int | None:
    index = message.get("index")
    return index if _is_index(index) else None


def _int(value: Any) -> int:
    """A page's pixel count for a message: 0 unless a number of sane size (NaN fails too)."""
    return int(value) if isinstance(value, (int, float)) and -1e9 < value < 1e9 else 0
