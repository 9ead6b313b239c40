"""The guided exam end to end in Chromium: the doctor starts it, the patient's page shows the
targets at their places for their times (with a pause), the figures reach the doctor's
panel, and the report downloads. Also: a phone held in portrait, stopping midway, and a
window too small for the targets. Screenshots go to test-artifacts/exam-*.png.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page

from dmask_rt.exam.protocol import STEPS, total_duration_s
from test_server_browser import ARTIFACTS, CLIP, _wait_playing, _write_y4m, chromium_consultation, relay  # noqa: F401 - fixture
from server.rooms import CLOSEUP_SIZE

RECORD_STEPS = """() => {
    window.examSteps = [];
    new MutationObserver(() => {
        const name = document.querySelector('#exam-target').dataset.step;
        window.examSteps.push([name, performance.now() / 1000]);
    }).observe(document.querySelector('#exam-target'), { attributes: true, attributeFilter: ['data-step'] });
}"""


def _target_place(page: Page) -> tuple[float, float]:
    """The target's centre as fractions of the exam stage."""
    return page.evaluate("""() => {
        const s = document.querySelector('#exam-stage').getBoundingClientRect();
        const t = document.querySelector('#exam-target').getBoundingClientRect();
        return [(t.left + t.width / 2 - s.left) / s.width, (t.top + t.height / 2 - s.top) / s.height]; }""")


def _wait_step(page: Page, name: str, timeout_s: float = 20) -> None:
    page.wait_for_function("n => document.querySelector('#exam-target').dataset.step === n", arg=name,
                           timeout=timeout_s * 1000)


def test_the_guided_exam_runs_its_steps_and_the_doctor_gets_the_report(relay: str, tmp_path: Path) -> None:
    width, height = _write_y4m(CLIP, tmp_path / "camera.y4m")
    with chromium_consultation(relay, tmp_path / "camera.y4m", width, height) as (patient, doctor, links):
        doctor.click("#show-closeup")  # the eyes magnified, rendered by the relay at their own size
        _wait_playing(doctor, "#closeup", *CLOSEUP_SIZE, timeout_s=20)
        doctor.click("#exam-start")
        patient.wait_for_selector("#exam-intro", state="visible", timeout=10000)
        doctor.wait_for_function("() => /Waiting for the patient/.test(document.querySelector('#exam-status').textContent)")
        patient.screenshot(path=str(ARTIFACTS / "exam-patient-intro.png"))
        patient.evaluate(RECORD_STEPS)
        patient.click("label:has-text('Above the middle')")  # the patient confirms the camera's place
        patient.click("#exam-begin")
        patient.wait_for_selector("#exam-stage", state="visible")

        _wait_step(patient, "calibration_right")
        patient.wait_for_timeout(300)
        u, v = _target_place(patient)
        assert abs(u - 0.92) < 0.01 and abs(v - 0.5) < 0.01, (u, v)  # the patient's right: the page's right
        patient.screenshot(path=str(ARTIFACTS / "exam-patient-target.png"))

        _wait_step(patient, "calibration_left")
        patient.wait_for_timeout(500)
        patient.click("#exam-pause")
        patient.wait_for_selector("#exam-paused", state="visible")
        doctor.wait_for_function("() => document.querySelector('#exam-status').dataset.state === 'paused'", timeout=5000)
        patient.wait_for_timeout(1500)
        patient.click("#exam-continue")
        _wait_step(patient, "calibration_left", timeout_s=2)  # the paused step starts again

        _wait_step(patient, "gaze_up_left", timeout_s=60)
        patient.wait_for_timeout(300)
        u, v = _target_place(patient)
        assert abs(u - 0.08) < 0.01 and abs(v - 0.08) < 0.01, (u, v)
        doctor.wait_for_function("() => document.querySelector('#exam-status').dataset.state === 'done'",
                                 timeout=(total_duration_s() + 30) * 1000)
        steps = patient.evaluate("() => window.examSteps")
        assert patient.is_hidden("#exam")  # the page is back to the consultation

        # Every step showed, in order, for its own time (the paused one twice).
        names = [name for name, _ in steps]
        assert names == [s.name for s in STEPS[:3]] + [STEPS[2].name] + [s.name for s in STEPS[3:]], names
        shown = {}
        for (name, start), (_, end) in zip(steps, steps[1:]):
            shown[name] = end - start  # the later run of the paused step wins
        for step in STEPS[:-1]:
            assert abs(shown[step.name] - step.duration_s) < 0.25, (step.name, shown[step.name])

        # The figures and the files reached the doctor; the report downloads.
        doctor.wait_for_selector("#exam-files a", timeout=15000)
        cells = doctor.locator("table.nine-gaze td").all()
        assert [c.get_attribute("data-position") for c in cells] == [
            "up_right", "up", "up_left", "right", "primary", "left", "down_right", "down", "down_left"]
        doctor.locator("section.exam-panel").screenshot(path=str(ARTIFACTS / "exam-doctor-panel.png"))
        doctor.screenshot(path=str(ARTIFACTS / "exam-doctor-page.png"), full_page=True)
        with doctor.expect_download() as download:
            doctor.click("#exam-files a:has-text('Report')")
        report = Path(download.value.path()).read_text()
        assert "<svg" in report or "data:image/png;base64" in report
        assert not re.search(r"""(src|href)=["']https?:""", report)  # self-contained
        files = {p.name for p in (tmp_path / "recordings" / links["id"]).iterdir()}
        assert {n for n in files if n.startswith("exam-")} == {
            n for n in doctor.locator("#exam-files a").evaluate_all("as => as.map(a => a.download)")}
        record = json.loads(next((tmp_path / "recordings" / links["id"]).glob("exam-*[0-9].json")).read_text())
        assert record["screen"]["camera_source"] == "confirmed" and record["screen"]["mm_per_px_source"] == "assumed"
        assert [s["status"] for s in record["steps"]].count("interrupted") == 1


@pytest.mark.parametrize("viewport", [{"width": 360, "height": 640}])
def test_exam_on_a_phone_stopped_midway_and_in_a_too_small_window(relay: str, tmp_path: Path, viewport: dict) -> None:
    width, height = _write_y4m(CLIP, tmp_path / "camera.y4m")
    with chromium_consultation(relay, tmp_path / "camera.y4m", width, height) as (patient, doctor, links):
        patient.set_viewport_size(viewport)  # a phone held in portrait
        doctor.click("#exam-start")
        patient.wait_for_selector("#exam-intro", state="visible", timeout=10000)
        patient.screenshot(path=str(ARTIFACTS / "exam-phone-intro.png"))
        patient.click("summary")  # the bank-card check: on a phone the card is upright, its short side matched
        patient.eval_on_selector("#card-size", "s => { s.value = 300; s.dispatchEvent(new Event('input')); }")
        box = patient.locator("#card-box").bounding_box()
        assert box and abs(box["width"] - 300) < 1 and abs(box["height"] - 300 * 85.6 / 53.98) < 1
        patient.click("#exam-begin")
        _wait_step(patient, "calibration_right")
        u, v = _target_place(patient)
        assert abs(u - 0.92) < 0.01 and abs(v - 0.5) < 0.01
        box = patient.locator("#exam-target").bounding_box()
        assert box and box["width"] >= 48 and box["x"] + box["width"] <= viewport["width"]  # whole and large
        for button in ("#exam-pause", "#exam-stop"):  # reachable, and not over any target's place
            b = patient.locator(button).bounding_box()
            assert b and b["y"] > 0.1 * viewport["height"] and b["y"] + b["height"] < 0.45 * viewport["height"]
        patient.screenshot(path=str(ARTIFACTS / "exam-phone-target.png"))
        _wait_step(patient, "calibration_up", timeout_s=10)
        patient.click("#exam-stop")
        doctor.wait_for_function("() => document.querySelector('#exam-status').dataset.state === 'stopped'", timeout=5000)
        doctor.wait_for_selector("#exam-repeat:not(.hidden)", timeout=15000)  # what was not reached can be repeated
        assert patient.is_hidden("#exam")
        doctor.wait_for_selector("#exam-files a", timeout=15000)  # what was measured is saved
        record = json.loads(next((tmp_path / "recordings" / links["id"]).glob("exam-*[0-9].json")).read_text())
        assert record["screen"]["mm_per_px_source"] == "card"
        assert record["screen"]["mm_per_px"] == pytest.approx(53.98 / 300)
        assert record["screen"]["width_px"] == viewport["width"]

        # The close-up costs nothing hidden: its track sends no frames then.
        doctor.click("#show-closeup")
        _wait_playing(doctor, "#closeup", *CLOSEUP_SIZE, timeout_s=20)
        doctor.click("#show-closeup")
        doctor.wait_for_timeout(1000)
        frames = doctor.eval_on_selector("#closeup", "v => v.getVideoPlaybackQuality().totalVideoFrames")
        doctor.wait_for_timeout(1500)
        assert doctor.eval_on_selector("#closeup", "v => v.getVideoPlaybackQuality().totalVideoFrames") <= frames + 1

        patient.set_viewport_size({"width": 260, "height": 240})
        doctor.click("#exam-start")
        patient.wait_for_selector("#exam-intro", state="visible", timeout=10000)
        patient.click("#exam-begin")
        patient.wait_for_selector("#exam-small", state="visible")
        doctor.wait_for_function("() => /too small/.test(document.querySelector('#exam-status').textContent)", timeout=5000)
