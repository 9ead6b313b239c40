"""Hostile data-channel messages: `Room.receive` from either page, and the exam they drive.

Whatever a page sends (any JSON, wrong types, odd numbers, deep nesting, floods), nothing
raises out of `Room.receive` (it runs in aiortc's data-channel callback), what the room
sends to the pages stays strict JSON, the exam's state stays one of its own, and its
record is one the analysis reads.
"""
from __future__ import annotations

import asyncio
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiortc import RTCConfiguration
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import server.exam
from dmask_rt.exam.analysis import analyse
from dmask_rt.exam.protocol import STEPS
from dmask_rt.pipeline import Masker
from hostile import JSON_VALUES, ODD_NUMBERS, to_json
from server.exam import MAX_RUNS, RoomExam
from server.media import Masked
from server.metrics import Metrics
from server.rooms import CLOSEUP_SIZE, MAX_MESSAGE, MediaSettings, Room

STATES = {"idle", "waiting", "running", "paused", "done", "stopped"}
EVENTS = ["screen", "step", "step_done", "pause", "resume", "too_small", "stop", "done"]
ACTIONS = ["start", "stop", "repeat"]
SCREEN = {"width_px": 1280, "height_px": 800, "mm_per_px": 0.2646, "mm_per_px_source": "card",
          "camera_x_mm": 0.0, "camera_y_mm": 8.0, "camera_source": "confirmed"}
INDEX = st.integers(-2, len(STEPS) + 1)
ODD = JSON_VALUES | ODD_NUMBERS

#: Exam messages near the real ones: right keys, values sometimes right, often not.
EXAM_MESSAGES = st.fixed_dictionaries(
    {"type": st.just("exam")},
    optional={
        "action": st.sampled_from(ACTIONS) | ODD,
        "steps": st.lists(INDEX, max_size=4) | ODD,
        "event": st.sampled_from(EVENTS) | ODD,
        "index": INDEX | ODD,
        "t": st.floats(0, 100) | ODD,
        **{key: st.just(value) | ODD for key, value in SCREEN.items()},
    },
)
CLOSEUP_MESSAGES = st.fixed_dictionaries({"type": st.just("closeup")}, optional={"on": st.booleans() | ODD})
TEXTS = st.one_of(
    EXAM_MESSAGES.map(to_json), CLOSEUP_MESSAGES.map(to_json), JSON_VALUES.map(to_json),
    st.text(max_size=50),
    st.integers(1, 40_000).map(lambda n: "[" * n),                   # deeper than the parser recurses
    st.integers(1, 20_000).map(lambda n: '{"type":"exam","x":' * n),
    st.just(to_json({"type": "exam", "event": "screen", "pad": "x" * MAX_MESSAGE})),  # over the size limit
)
PAGE_DATA = st.one_of(TEXTS, st.binary(max_size=64))
#: A frame the room masked: with a face (plausible zeros) or without.
FRAMES = st.booleans()


class Page:
    """A page's end of a session: what the room sends it, checked to be strict JSON."""

    def __init__(self, role: str) -> None:
        self.role = role
        self.sent: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any]) -> None:
        json.dumps(message, allow_nan=False)  # what a browser's JSON.parse accepts
        self.sent.append(message)

    async def close(self) -> None:
        pass


def _masked(face: bool, received: float) -> Masked:
    params = dict.fromkeys(Masker.PARAM_NAMES, 0.0) if face else None
    return Masked(0, np.zeros((2, 2, 3), np.uint8), face, params, received=received)


@pytest.fixture
def quick_exam_files(monkeypatch: pytest.MonkeyPatch) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """The exam's figures and files (seconds each on its thread) replaced by a note of what
    they were given: the tests analyse the final record themselves, once."""
    saved: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []

    def save(directory: Path, record: dict[str, Any], rows: list[dict[str, Any]]) -> tuple[None, list[str]]:
        json.dumps(record, allow_nan=False)
        saved.append((record, rows))
        return None, []  # no figures: what the doctor is told while they are computed

    monkeypatch.setattr(server.exam, "_save", save)
    monkeypatch.setattr(server.exam, "_analyse", lambda record, rows, final=False: None)
    monkeypatch.setattr(server.exam, "eye_model", lambda results: None)
    return saved


def _check_exam(exam: RoomExam, analysed: bool = False) -> None:
    """State and record sane; `analysed`: the analysis also reads the record (the end of a run)."""
    assert exam.state in STATES
    if exam.record is not None:
        record = exam.record_now()
        json.dumps(record, allow_nan=False)
        assert len(record["steps"]) <= MAX_RUNS
        for step in record["steps"]:
            assert math.isfinite(step["start_s"]) and (step["end_s"] is None or math.isfinite(step["end_s"]))
        if analysed:
            analyse(record, exam.rows, draws=10, traces=False)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["patient", "doctor", "frame"]), PAGE_DATA, FRAMES), max_size=25))
def test_room_receive_survives_any_message_from_either_page(quick_exam_files: list, script: list) -> None:
    async def scenario(directory: Path) -> None:
        room = Room("r", Metrics(), lambda: None, MediaSettings(RTCConfiguration(), directory))  # type: ignore[arg-type, return-value]
        pages = {role: Page(role) for role in ("patient", "doctor")}
        room.sessions.update(pages)  # type: ignore[arg-type]
        room.receive(pages["doctor"], to_json({"type": "exam", "action": "start"}))  # most sequences need a running exam
        for i, (who, data, face) in enumerate(script):
            if who == "frame":
                room.engine._listeners[0](_masked(face, float(i)))  # as the engine publishes it
            else:
                room.receive(pages[who], data)
            assert room.engine.closeup_size in (None, CLOSEUP_SIZE)
            _check_exam(room.exam)
            await asyncio.sleep(0)
        await room.close()
        _check_exam(room.exam, analysed=True)

    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(scenario(Path(directory)))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["patient", "doctor", "frame"]), EXAM_MESSAGES, FRAMES), max_size=40))
def test_any_exam_message_sequence_keeps_a_valid_state_and_an_analysable_record(quick_exam_files: list, script: list) -> None:
    async def scenario(directory: Path) -> None:
        exam = RoomExam(directory, lambda role, message: json.dumps(message, allow_nan=False))
        exam.doctor({"type": "exam", "action": "start"})
        for i, (who, message, face) in enumerate(script):
            if who == "frame":
                exam.on_masked(_masked(face, float(i) / 30))
            else:
                (exam.doctor if who == "doctor" else exam.patient)(message)
            _check_exam(exam)
            await asyncio.sleep(0)
        await exam.close()
        _check_exam(exam, analysed=True)

    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(scenario(Path(directory)))
    for record, rows in quick_exam_files:  # every record the exam would have saved
        analyse(record, rows, draws=10, traces=False)


# --- found by the fuzzing above, kept as plain cases --------------------------------------------

def test_deep_nesting_and_huge_numbers_are_ignored_not_raised(quick_exam_files: list, tmp_path: Path) -> None:
    async def scenario() -> None:
        room = Room("r", Metrics(), lambda: None, MediaSettings(RTCConfiguration(), tmp_path))  # type: ignore[arg-type, return-value]
        pages = {role: Page(role) for role in ("patient", "doctor")}
        room.sessions.update(pages)  # type: ignore[arg-type]
        room.receive(pages["patient"], "[" * 5000)  # RecursionError in json.loads
        room.receive(pages["doctor"], to_json({"type": "exam", "action": "start"}))
        for hostile in ({"event": "step", "index": 0, "t": 10**400}, {"event": "step", "index": 1, "t": 1e308},
                        {"event": "step", "index": 2, "t": -1e308}, {"event": "too_small", "width_px": 10**400},
                        {"event": "screen", **SCREEN, "width_px": 10**400}):
            room.receive(pages["patient"], to_json({"type": "exam", **hostile}))
        assert room.exam.state == "running" and room.exam.record["screen"] is None
        room.receive(pages["patient"], to_json({"type": "exam", "event": "done"}))
        room.receive(pages["doctor"], to_json({"type": "exam", "action": "repeat", "steps": 5}))  # not a list
        assert room.exam.state == "done"
        _check_exam(room.exam, analysed=True)
        await room.close()

    asyncio.run(scenario())


def test_a_flood_of_step_events_keeps_a_bounded_record(quick_exam_files: list, tmp_path: Path) -> None:
    async def scenario() -> None:
        exam = RoomExam(tmp_path, lambda role, message: None)
        exam.doctor({"type": "exam", "action": "start"})
        for i in range(MAX_RUNS * 3):
            exam.patient({"type": "exam", "event": "step", "index": i % len(STEPS), "t": i * 0.01})
        assert len(exam.record_now()["steps"]) == MAX_RUNS
        assert exam.state == "running"
        await exam.close()

    asyncio.run(scenario())
