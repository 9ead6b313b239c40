"""The exam inside a room (server/exam.py): the messages between the pages and the room, the
frames it keeps, what it saves, and that `dmask exam` recomputes the saved figures.

The room's clock is a test clock, so a whole two-minute exam runs in a second; the frames
are the fitted parameters of a patient 50 cm from the camera (no pixels ever reach the
exam), and the Chromium tests (test_exam_browser.py) run the real pages.
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from dmask_rt.cli import main as dmask_main
from dmask_rt.exam.protocol import STEPS
from dmask_rt.fit.gauss_newton import rodrigues
from dmask_rt.measure.frame import frame_measures
from dmask_rt.model.generic_face import GenericFace
from dmask_rt.model.params import AvatarParams
from dmask_rt.paramlog import FIXED_COLUMNS
from server.exam import RoomExam, live_view
from server.media import Masked

FPS = 30
SCREEN = {"event": "screen", "width_px": 1440, "height_px": 900, "mm_per_px": 0.2, "mm_per_px_source": "card",
          "camera_x_mm": 0.0, "camera_y_mm": 6.0, "camera_source": "confirmed"}


@pytest.fixture(scope="module")
def face() -> GenericFace:
    return GenericFace.load()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Pages:
    """What the room sent to each page."""

    def __init__(self) -> None:
        self.sent: dict[str, list[dict]] = {"patient": [], "doctor": []}

    def __call__(self, role: str, message: dict) -> None:
        self.sent[role].append(json.loads(json.dumps(message)))  # as the data channel carries it

    def last(self, role: str) -> dict:
        return self.sent[role][-1]


def masked(face: GenericFace, rng: np.random.Generator, received: float, found: bool = True) -> Masked:
    if not found:
        return Masked(0, np.zeros((4, 4, 3), np.uint8), False, None, received=received)
    params = AvatarParams(rodrigues(np.radians([2.0, -3.0, 1.0])), np.array([5.0, 20.0, 500.0]),
                          np.zeros(face.n_expression), np.zeros(8), np.radians(rng.normal(0, 0.5, (2, 2))))
    return Masked(0, np.zeros((4, 4, 3), np.uint8), True, {**params.to_dict(), **frame_measures(face, params)},
                  received=received)


async def run_steps(exam: RoomExam, clock: Clock, face: GenericFace, steps: list[int], *,
                    lost: set[int] = frozenset(), seed: int = 0) -> None:
    """The patient's page running `steps` at the protocol's pace, one frame every 1/FPS s."""
    rng = np.random.default_rng(seed)
    for index in steps:
        exam.patient({"type": "exam", "event": "step", "index": index})
        for _ in range(int(STEPS[index].duration_s * FPS)):
            clock.now += 1 / FPS
            exam.on_masked(masked(face, rng, clock.now, found=index not in lost))
        exam.patient({"type": "exam", "event": "step_done", "index": index})
        await asyncio.sleep(0)


async def settle(exam: RoomExam) -> None:
    """Wait for the ended exam's files (written on the exam's thread)."""
    for _ in range(600):
        if exam.files:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the exam's files were not written")


def test_a_whole_exam_is_saved_and_dmask_exam_recomputes_it(tmp_path: Path, face: GenericFace) -> None:
    async def scenario() -> tuple[RoomExam, Pages]:
        clock, pages = Clock(), Pages()
        exam = RoomExam(tmp_path, pages, clock)
        exam.doctor({"type": "exam", "action": "start"})
        start = pages.last("patient")
        assert start["action"] == "start" and start["steps"] == list(range(len(STEPS)))
        assert [s["name"] for s in start["protocol"]] == [s.name for s in STEPS]
        assert pages.last("doctor")["state"] == "waiting"
        exam.on_masked(masked(face, np.random.default_rng(1), clock.now))
        assert exam.rows == []  # nothing is kept before the patient begins
        exam.patient({"type": "exam", **SCREEN})
        await run_steps(exam, clock, face, list(range(len(STEPS))), lost={STEPS.index(next(s for s in STEPS if s.name == "gaze_up"))})
        exam.patient({"type": "exam", "event": "done"})
        await settle(exam)
        return exam, pages

    exam, pages = asyncio.run(scenario())
    assert exam.state == "done"
    stem = exam.record["params_file"].removesuffix(".params.jsonl")
    assert sorted(exam.files) == sorted(f"{stem}{s}" for s in (".params.jsonl", ".json", ".results.json", ".report.html"))
    for name in exam.files:
        assert (tmp_path / name).is_file()
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind
    record = json.loads((tmp_path / f"{stem}.json").read_text())
    assert record["screen"] == {k: v for k, v in SCREEN.items() if k != "event"}
    assert [s["name"] for s in record["steps"]] == [s.name for s in STEPS]
    assert all(s["status"] == "done" for s in record["steps"])
    starts = [s["start_s"] for s in record["steps"]]
    assert np.allclose(np.diff(starts), [s.duration_s for s in STEPS[:-1]], atol=0.05)
    rows = (tmp_path / f"{stem}.params.jsonl").read_text().splitlines()
    assert len(rows) == sum(int(s.duration_s * FPS) for s in STEPS)
    first = json.loads(rows[0])
    assert list(first)[:3] == list(FIXED_COLUMNS) and first["face_found"] is True

    results = json.loads((tmp_path / f"{stem}.results.json").read_text())
    by_name = {s["name"]: s for s in results["steps"]}
    assert by_name["gaze_up"]["status"] != "measured"  # its face was lost
    assert by_name["gaze_down"]["status"] == "measured"
    doctor = pages.last("doctor")
    assert doctor["state"] == "done" and doctor["files"] == exam.files and doctor["results"] == live_view(results)

    # Offline, from the saved record and frames: the same figures.
    out_json, out_html = tmp_path / "again.json", tmp_path / "again.html"
    assert dmask_main(["exam", str(tmp_path / f"{stem}.json"), "--json", str(out_json), "--html", str(out_html)]) == 0
    assert json.loads(out_json.read_text()) == results
    assert out_html.read_text() == (tmp_path / f"{stem}.report.html").read_text()


def test_leaving_mid_exam_keeps_what_was_measured(tmp_path: Path, face: GenericFace) -> None:
    async def scenario() -> RoomExam:
        clock, pages = Clock(), Pages()
        exam = RoomExam(tmp_path, pages, clock)
        exam.doctor({"type": "exam", "action": "start"})
        exam.patient({"type": "exam", **SCREEN})
        await run_steps(exam, clock, face, [0, 1, 2])
        exam.patient({"type": "exam", "event": "step", "index": 3})
        clock.now += 1.0
        exam.patient_left()
        await settle(exam)
        return exam

    exam = asyncio.run(scenario())
    assert exam.state == "stopped" and "left" in exam.message
    record = json.loads((tmp_path / exam.files[1]).read_text())
    assert [s["status"] for s in record["steps"]] == ["done", "done", "done", "stopped"]
    statuses = {s["name"]: s["status"] for s in exam.results["steps"]}
    assert len(json.dumps(live_view(exam.results))) < 16_000  # one data-channel message
    assert statuses["calibration_primary"] == "measured"
    assert statuses["calibration_up"] != "measured" and statuses["cover_right"] != "measured"


def test_pause_repeats_the_step_and_the_doctor_can_repeat_what_was_not_measured(tmp_path: Path, face: GenericFace) -> None:
    async def scenario() -> tuple[RoomExam, Pages]:
        clock, pages = Clock(), Pages()
        exam = RoomExam(tmp_path, pages, clock)
        exam.doctor({"type": "exam", "action": "start"})
        exam.patient({"type": "exam", **SCREEN})
        exam.patient({"type": "exam", "event": "step", "index": 0})
        clock.now += 1.0
        exam.patient({"type": "exam", "event": "pause"})
        assert exam.state == "paused" and pages.last("doctor")["message"] == "Paused by the patient."
        clock.now += 5.0
        exam.patient({"type": "exam", "event": "resume"})
        await run_steps(exam, clock, face, [0, 1])
        exam.patient({"type": "exam", "event": "stop"})
        await settle(exam)
        exam.doctor({"type": "exam", "action": "repeat", "steps": [2, 3, 99, "x"]})
        return exam, pages

    exam, pages = asyncio.run(scenario())
    assert [(s["index"], s["status"]) for s in exam.record_now()["steps"]] == [(0, "interrupted"), (0, "done"), (1, "done")]
    assert exam.state == "waiting"
    assert pages.last("patient")["steps"] == [2, 3]  # out-of-range and non-integer steps dropped


@pytest.mark.parametrize("message", [
    {"type": "exam", "event": "screen", **{k: v for k, v in SCREEN.items() if k != "event"}, "mm_per_px": float("nan")},
    {"type": "exam", "event": "screen", **{k: v for k, v in SCREEN.items() if k != "event"}, "width_px": 1e9},
    {"type": "exam", "event": "screen", **{k: v for k, v in SCREEN.items() if k != "event"}, "camera_source": "<b>"},
    {"type": "exam", "event": "step", "index": 24},
    {"type": "exam", "event": "step", "index": True},
    {"type": "exam", "event": "step", "index": "0"},
    {"type": "exam", "event": "launch"},
])
def test_bad_messages_from_the_patient_change_nothing(tmp_path: Path, message: dict) -> None:
    exam = RoomExam(tmp_path, Pages(), Clock())
    exam.doctor({"type": "exam", "action": "start"})
    before = json.dumps(exam.record)
    exam.patient(message)
    assert json.dumps(exam.record) == before and exam.state == "waiting"


def test_nothing_happens_before_the_doctor_starts(tmp_path: Path) -> None:
    pages = Pages()
    exam = RoomExam(tmp_path, pages, Clock())
    for event in ("step", "done", "stop", "pause"):
        exam.patient({"type": "exam", "event": event, "index": 0})
    exam.doctor({"type": "exam", "action": "stop"})
    exam.doctor({"type": "exam", "action": "repeat", "steps": [1]})
    assert exam.state == "idle" and exam.record is None and not pages.sent["patient"]


def test_steps_are_timed_by_the_pages_clock_not_by_when_its_messages_arrive(tmp_path: Path) -> None:
    """The page's clock runs 500 s behind the relay's; one message is held up 1.2 s on the way."""
    async def scenario() -> tuple[RoomExam, float, float]:
        clock = Clock()
        exam = RoomExam(tmp_path, Pages(), clock)
        exam.doctor({"type": "exam", "action": "start"})
        t0, page = clock.now, clock.now - 500.0
        for index, (start, arrival_delay) in enumerate([(1.0, 0.02), (4.0, 1.2), (7.0, 0.05)]):
            clock.now = page + 500.0 + start + arrival_delay
            exam.patient({"type": "exam", "event": "step", "index": index, "t": page + start})
            clock.now = page + 500.0 + start + 3.0 + 0.03
            exam.patient({"type": "exam", "event": "step_done", "index": index, "t": page + start + 3.0})
        return exam, t0, page

    exam, t0, page = asyncio.run(scenario())
    steps = exam.record_now()["steps"]
    assert [s["start_s"] for s in steps] == pytest.approx([1.02, 4.02, 7.02], abs=1e-3)
    assert [s["end_s"] - s["start_s"] for s in steps] == pytest.approx([3.0, 3.0, 3.0], abs=1e-3)
    assert t0 + steps[0]["start_s"] == pytest.approx(page + 500.0 + 1.02, abs=1e-3)


def test_what_was_measured_is_on_disk_after_each_step(tmp_path: Path, face: GenericFace) -> None:
    """A crash mid-exam (this process killed) keeps every finished step: the record and its
    frames are written after each one, and `dmask exam` reads them."""
    async def scenario() -> RoomExam:
        clock = Clock()
        exam = RoomExam(tmp_path, Pages(), clock)
        exam.doctor({"type": "exam", "action": "start"})
        exam.patient({"type": "exam", **SCREEN})
        for index in range(3):
            await run_steps(exam, clock, face, [index])
            await exam._analysis   # this step's writing and figures
        return exam

    exam = asyncio.run(scenario())
    assert exam.state == "running" and not exam.files  # nothing ended
    stem = exam.record["params_file"].removesuffix(".params.jsonl")
    record = json.loads((tmp_path / f"{stem}.json").read_text())
    assert [s["status"] for s in record["steps"]] == ["done"] * 3
    assert len((tmp_path / exam.record["params_file"]).read_text().splitlines()) == len(exam.rows)
    assert dmask_main(["exam", str(tmp_path / f"{stem}.json"), "--json", str(tmp_path / "r.json"),
                       "--html", str(tmp_path / "r.html")]) == 0
    statuses = {s["name"]: s["status"] for s in json.loads((tmp_path / "r.json").read_text())["steps"]}
    assert statuses["calibration_left"] == "measured" and statuses["calibration_up"] == "not reached"
