"""The guided exam's analysis, report and CLI: known answers on synthetic exams (tests/exam_synth.py).

Each synthetic patient's eyes point their true visual axes at the protocol's targets
(plus a deviation where the scenario has one), read through a chosen eye model (offset
c, gain rho, kappa) with 0.6 degrees of per-frame noise; tolerances are a few times the
analysis's own sd for these streams.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re

import numpy as np
import pytest
from exam_synth import PARAM_NAMES, Patient, esotropia, exam, reading, schedule

from dmask_rt.cli import main
from dmask_rt.exam.analysis import analyse
from dmask_rt.exam.calibration import FAILED, GENERIC_GAIN_SD, fit_gain, gain_failure, visual_axis
from dmask_rt.exam.geometry import Screen, target_point
from dmask_rt.exam.live import calibrated_values, eye_model
from dmask_rt.exam.report import report_html
from dmask_rt.exam.protocol import STEPS
from dmask_rt.measure.alignment import fixation_angles
from dmask_rt.model.eyeball import IRIS_DEPTH_MM
from dmask_rt.model.generic_face import GenericFace
from dmask_rt.model.params import euler_angles, head_rotation
from dmask_rt.paramlog import ParamLog, read_params

ET_PRIMARY_PD = 100 * math.tan(math.radians(10))  # 17.6
ET_LEFT_PD = 100 * math.tan(math.radians(15))     # 26.8
COVER_STEPS = ("cover_left", "uncover_left", "cover_right", "uncover_right")
#: The esotropic patient's own anatomy: offsets, a larger eye than the generic one, a kappa off the population's.
ESO = Patient(deviation=esotropia, c_mm=np.array([[0.5, 0.2], [-0.3, 0.0]]), kappa_deg=np.array([[6.0, 0.0], [-4.0, 0.0]]))


@pytest.fixture(scope="module")
def eso_exam() -> tuple[dict, list[dict], dict]:
    record, rows = exam(ESO)
    return record, rows, analyse(record, rows)


@pytest.fixture(scope="module")
def lids_exam() -> tuple[dict, list[dict], dict]:
    patient = Patient(c_mm=np.array([[2.0, 0.0], [0.0, 0.0]]), lid_lag_r_mm=2.0, closure_gap_mm=(3.0, 0.2),
                      rest_blinks=6, face_lost_in=("gaze_up",), down_gaze_openness=0.6)
    record, rows = exam(patient, seed=2)
    return record, rows, analyse(record, rows)


@pytest.fixture(scope="module")
def staring_exam() -> tuple[dict, list[dict], dict]:
    """A patient who looks at the camera whatever the target does (as a looping video of a face would)."""
    record, rows = exam(Patient(stares_at_camera=True), seed=3)
    return record, rows, analyse(record, rows)


def _step(results: dict, name: str) -> dict:
    return next(s for s in results["steps"] if s["name"] == name)


def _assert_no_nan(results: dict, record: dict) -> None:
    """Valid JSON without NaN, and no "nan" in the results' text nor in the report's (its PNG left out)."""
    text = json.dumps(results, allow_nan=False)
    html = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", report_html(results, record))
    assert not re.search(r"\bnan\b", text + html, re.I)


def _assert_measured_cells_have_values(results: dict) -> None:
    """A nine-gaze cell or hold is "measured" only with its deviation's values (both axes, deg and PD)."""
    for name, cell in (results["nine_gaze"] | results["holds"]).items():
        if cell["status"] == "measured":
            d = cell["deviation"]
            assert all(isinstance(d[f"{axis}_{unit}"]["value"], float) for axis in ("horizontal", "vertical") for unit in ("deg", "pd")), name


def test_target_place_and_fixation_angles() -> None:
    screen = Screen.from_record({"width_px": 1000, "height_px": 500, "mm_per_px": 0.3, "camera_x_mm": 10.0, "camera_y_mm": 8.0})
    # The page's centre: 10 mm to the patient's LEFT of the camera (camera 10 mm to the patient's right) = image right, +x.
    assert np.allclose(target_point(screen, 0.5, 0.5), [10.0, 8.0 + 75.0, 0.0])
    # The page's right edge as the patient sees it is the image left (-x).
    assert np.allclose(target_point(screen, 1.0, 0.0), [-(150.0 - 10.0), 8.0, 0.0])
    face = GenericFace.load()
    t = np.array([0.0, 0.0, 500.0])
    centre_r = face.eye_centres[0] + t  # a frontal head: R = I
    straight = fixation_angles(face, np.eye(3), t, centre_r * [1, 1, 0])
    assert np.allclose(straight[0], 0.0, atol=1e-9)
    below = fixation_angles(face, head_rotation(0.0, 0.0, 0.0), t, centre_r * [1, 1, 0] + [0.0, 100.0, 0.0])
    assert below[0, 1] == pytest.approx(-math.degrees(math.atan2(100.0, centre_r[2])))  # below the eye: vertical < 0
    # Batched over frames: the same as one frame at a time.
    poses = [(5.0, -8.0, 2.0, [10.0, -5.0, 480.0]), (-12.0, 4.0, -1.0, [-20.0, 3.0, 530.0])]
    rotations = head_rotation(*np.array([p[:3] for p in poses]).T)
    translations, point = np.array([p[3] for p in poses]), np.array([30.0, 120.0, 0.0])
    batched = fixation_angles(face, rotations, translations, point)
    assert np.allclose(batched, [fixation_angles(face, rotations[i], translations[i], point) for i in range(2)])
    for rotation in rotations:  # the logged angles give back the rotation they came from
        assert np.allclose(head_rotation(*np.degrees(euler_angles(rotation))), rotation)


def test_eye_model_round_trip_and_gain_fit() -> None:
    theta = np.array([[-18.0, -9.0, 0.0, 9.0, 18.0]])
    readings = reading(theta, 0.7, 12.0, 5.0)
    c, rho = fit_gain(readings, theta, 5.0)
    assert c[0] == pytest.approx(0.7) and rho[0] == pytest.approx(12.0)
    assert np.allclose(visual_axis(readings, 0.7, 12.0, 5.0), theta)
    assert fit_gain(readings[:, 2:3], theta[:, 2:3], 5.0) is None  # one target: no gain


def test_gain_plausibility_rule() -> None:
    """(3): within 2 sd of 7-16 mm and more than 3 sd above zero."""
    readings, targets = np.array([-9.0, 0.0, 9.0]), np.array([-18.0, 0.0, 18.0])
    def draws(value: float, sd: float) -> np.ndarray:
        return np.concatenate([[value], value + sd * np.array([-1.0, 1.0])])  # these draws' sd is `sd`
    assert gain_failure(draws(10.5, 1.5), readings, targets) is None
    assert gain_failure(draws(6.0, 0.6), readings, targets) is None  # 2 sd from 7 mm
    assert gain_failure(draws(5.0, 0.5), readings, targets).startswith(
        "the eyes did not follow the targets: their reading moved 18.0° for a 36.0° target sweep (gain ρ 5.00 ± 0.50 mm")
    assert gain_failure(draws(20.0, 1.0), readings, targets).startswith("the readings moved more than an eye can")
    assert gain_failure(draws(9.0, 4.0), readings, targets).startswith("the readings scattered too much")


def test_esotropia_growing_on_left_gaze(eso_exam) -> None:
    _, _, r = eso_exam
    assert r["calibration"]["deviation_calibrated"] is True
    assert r["calibration"]["warnings"] == [] and r["summary"]["warnings"] == []
    for s in "rl":  # the right eye's gain is the left's (it deviates); both valid
        assert r["calibration"]["eyes"][s]["valid"] == {"horizontal": True, "vertical": True}
        assert r["calibration"]["eyes"][s]["gain_source"] == {"horizontal": "fit", "vertical": "fit"}
    assert r["calibration"]["deviating_eye"] == "r"
    for pos, truth, tol, max_sd in (("primary", ET_PRIMARY_PD, 1.5, 5.0), ("left", ET_LEFT_PD, 2.5, 9.0),
                                    ("up_left", ET_LEFT_PD, 2.5, 9.0), ("right", ET_PRIMARY_PD, 1.5, 5.0)):
        d = r["nine_gaze"][pos]["deviation"]
        h = d["horizontal_pd"]
        assert abs(h["value"] - truth) < tol, (pos, h)
        assert abs(h["value"] - truth) < 2 * h["sd"] < 2 * max_sd, (pos, h)  # the uncertainty covers the truth, not absurdly
        assert abs(d["vertical_pd"]["value"]) < 2.0
        assert "PD ET" in d["words"]
    # The right eye's excursion against its target shows it in (nasal, +), the left eye on target.
    eyes = r["nine_gaze"]["primary"]["eyes"]
    assert eyes["r"]["vs_target_horizontal_deg"]["value"] == pytest.approx(10.0, abs=1.0)
    assert eyes["l"]["vs_target_horizontal_deg"]["value"] == pytest.approx(0.0, abs=1.0)
    cover = r["cover"]
    assert cover["cover_left"]["tropia"] is True and "esotropia" in cover["cover_left"]["finding"]
    assert cover["cover_left"]["movement_horizontal_deg"]["value"] == pytest.approx(-10.0, abs=1.5)  # right eye moved out
    assert cover["cover_right"]["tropia"] is False
    assert "moved out" in cover["uncover_left"]["finding"]  # the left eye, turned in under the cover, takes fixation back
    assert not cover["cover_left"]["covered_eye_read_open"]
    primary = r["nine_gaze"]["primary"]["deviation"]["horizontal_pd"]["value"]
    assert r["findings"][0].startswith(f"Primary gaze: {primary:.1f} PD ET")
    assert r["holds"]["hold_left"]["deviation"]["horizontal_pd"]["value"] == pytest.approx(ET_LEFT_PD, abs=2.5)


def test_esotropia_without_cover_steps_is_not_calibrated(eso_exam) -> None:
    record, rows, _ = eso_exam
    runs = [s for s in record["steps"] if s["name"] not in COVER_STEPS]
    r = analyse(record | {"steps": runs}, rows)
    cal = r["calibration"]
    assert cal["deviation_calibrated"] is False
    assert [cal["eyes"][s]["offset_source"] for s in "rl"] == ["population", "population"]
    assert any("Do the cover test" in n for n in cal["notes"])
    h = r["nine_gaze"]["primary"]["deviation"]["horizontal_pd"]
    assert h["sd"] > 10.0  # the population's spread: about 8 degrees, 14 PD
    assert abs(h["value"] - ET_PRIMARY_PD) > 3.0  # the binocular calibration took part of the squint away ...
    assert abs(h["value"] - ET_PRIMARY_PD) < 2 * h["sd"]  # ... and the uncertainty says so
    assert set(COVER_STEPS) <= set(r["summary"]["not_reached"])


def test_one_cover_step_calibrates_through_the_fixating_eye(eso_exam) -> None:
    """Exam stopped after cover_left: the right eye took up fixation, so the left eye fixated in the
    binocular calibration and its own intercept is its offset."""
    record, rows, _ = eso_exam
    runs = [s for s in record["steps"] if s["name"] not in ("uncover_left", "cover_right", "uncover_right")]
    r = analyse(record | {"steps": runs}, [x for x in rows if x["time"] <= runs[-1]["end_s"]])
    cal = r["calibration"]
    assert [cal["eyes"][s]["offset_source"] for s in "rl"] == ["cover", "binocular"] and cal["deviation_calibrated"]
    h = r["nine_gaze"]["primary"]["deviation"]["horizontal_pd"]
    assert abs(h["value"] - ET_PRIMARY_PD) < 1.5 and abs(h["value"] - ET_PRIMARY_PD) < 2 * h["sd"] < 10.0


def test_offset_of_2mm_recovered_and_no_deviation(lids_exam) -> None:
    _, _, r = lids_exam
    eyes = r["calibration"]["eyes"]
    assert eyes["r"]["c_horizontal_mm"]["value"] == pytest.approx(2.0, abs=0.3)
    assert eyes["l"]["c_horizontal_mm"]["value"] == pytest.approx(0.0, abs=0.3)
    assert eyes["r"]["rho_horizontal_mm"]["value"] == pytest.approx(11.0, abs=1.0)
    assert eyes["r"]["residual_horizontal_deg"] < 1.0
    assert all(eyes[s]["valid"] == {"horizontal": True, "vertical": True} for s in "rl")
    assert not any("Calibration failed" in w for w in r["summary"]["warnings"])
    # The lids lowered with the gaze (0.6 of their usual opening) do not hide the eyes looking down.
    assert r["nine_gaze"]["down"]["eyes"]["r"]["vertical_deg"]["value"] is not None
    for pos, m in r["nine_gaze"].items():
        if m["status"] == "measured":
            assert abs(m["deviation"]["horizontal_pd"]["value"]) < 2.0, pos
            assert abs(m["deviation"]["vertical_pd"]["value"]) < 2.0, pos
    assert r["cover"]["cover_left"]["tropia"] is False and r["cover"]["cover_right"]["tropia"] is False


def test_face_lost_step_is_not_measured(lids_exam) -> None:
    _, _, r = lids_exam
    assert _step(r, "gaze_up")["status"] == "not measured"
    assert "face found in" in _step(r, "gaze_up")["reason"]
    assert r["nine_gaze"]["up"]["status"] == "not measured"
    assert [m["step"] for m in r["summary"]["not_measured"]] == ["gaze_up"]


def test_partial_record_reports_not_reached() -> None:
    names = [s["name"] for s in schedule()][:12]  # calibration and the first gaze steps
    runs = schedule(names)
    stopped = next(s for s in schedule() if s["name"] == "gaze_down_right") | {"status": "stopped"}
    repeated = [{**runs[5], "status": "interrupted"}, runs[5]]  # gaze_primary interrupted, then done
    record, rows = exam(Patient(), runs=runs[:5] + repeated + runs[6:] + [stopped], end_s=stopped["end_s"])
    r = analyse(record, rows)
    json.dumps(r, allow_nan=False)
    assert _step(r, "gaze_primary")["status"] == "measured"
    assert _step(r, "gaze_down_right") == _step(r, "gaze_down_right") | {"status": "not measured", "reason": "step stopped"}
    assert _step(r, "rest")["status"] == "not reached" and "rest" in r["summary"]["not_reached"]
    assert r["rest"]["rest"]["status"] == "not reached" and r["closure"]["closure"]["status"] == "not reached"
    assert r["calibration"]["deviation_calibrated"] is False
    assert r["nine_gaze"]["primary"]["deviation"]["horizontal_pd"]["value"] is not None
    html = report_html(r, record)
    assert "not reached" in html
    light = analyse(record, rows, traces=False)  # the live side's per-step update
    assert light["traces"] is None and light["nine_gaze"] == r["nine_gaze"]
    assert "no traces in these results" in report_html(light, record)


def test_live_record_with_a_running_step_and_no_screen(lids_exam) -> None:
    """As the live side analyses: the next step already running (no end yet), or the screen not reported."""
    record, rows, _ = lids_exam
    runs = [dict(s) for s in record["steps"][:7]]
    runs[-1] |= {"end_s": None, "status": "running"}
    r = analyse(record | {"steps": runs}, [x for x in rows if x["time"] < runs[-1]["start_s"] + 1.0])
    assert _step(r, runs[-1]["name"]) | {"status": "not reached", "reason": "in progress"} == _step(r, runs[-1]["name"])
    assert _step(r, "gaze_primary")["status"] == "measured"
    blind = analyse(record | {"steps": runs[:6], "screen": None}, rows)
    json.dumps(blind, allow_nan=False)
    # Its frames were measured, but without a target there is no deviation: "not measured", with the reason.
    assert blind["nine_gaze"]["primary"]["status"] == _step(blind, "gaze_primary")["status"] == "not measured"
    assert "screen has not been reported" in _step(blind, "gaze_primary")["reason"]
    assert blind["nine_gaze"]["primary"]["deviation"]["horizontal_pd"]["value"] is None
    assert "Primary gaze: deviation not measured (the screen has not been reported" in blind["findings"][0]
    assert _step(blind, "gaze_primary")["eyes"]["r"]["mrd1_mm"] == pytest.approx(4.0, abs=0.1)  # lids need no screen
    assert "not reported its screen" in blind["uncertainty"]["statement"]


def test_lid_lag_closure_and_blink_rate(lids_exam) -> None:
    _, _, r = lids_exam
    lag = r["lid_lag"]["pursuit_down"]["eyes"]
    assert lag["r"]["verdict"] == "lid lag" and lag["l"]["verdict"] == "none"
    sweep = lag["r"]["sweep_deg"][1] - lag["r"]["sweep_deg"][0]  # MRD1 rose 2 mm over this sweep
    assert lag["r"]["slope_mm_per_10deg_down"] == pytest.approx(20.0 / sweep, rel=0.15)
    assert abs(lag["l"]["slope_mm_per_10deg_down"]) < 0.2
    closure = r["closure"]["closure"]["eyes"]
    assert closure["r"]["gap_mm"] == pytest.approx(3.0, abs=0.1) and "lagophthalmos" in closure["r"]["verdict"]
    assert closure["l"]["verdict"] == "complete"
    rest = r["rest"]["rest"]
    assert rest["blinks"] == 6 and rest["blink_rate_per_min"] == pytest.approx(18.0, abs=0.01)
    assert rest["fixation_sd_deg"]["r"]["horizontal"] == pytest.approx(0.6, abs=0.15)  # the streams' per-frame noise
    assert r["nystagmus"]["rest"]["both"]["verdict"] == "none"
    assert "Lid lag on pursuit down: right eye." in r["findings"]
    assert "Gentle closure, right eye: incomplete (lagophthalmos), gap 3.0 mm." in r["findings"]
    assert "Blink rate at rest: 18 per minute." in r["findings"]


def test_covered_eye_read_as_open_is_flagged() -> None:
    record, rows = exam(Patient(covered_eye_open=True), runs=[s for s in schedule() if s["name"] in ("rest", *COVER_STEPS)])
    r = analyse(record, rows)
    assert r["cover"]["cover_left"]["covered_eye_read_open"] is True
    assert "not trustworthy" in r["cover"]["cover_left"]["warning"]


def test_report_nine_gaze_chart_escaping_and_no_urls(eso_exam) -> None:
    record, _, r = eso_exam
    html = report_html(r, record | {"started": "<script>alert(1)</script>"})
    assert "<script>" not in html and "&lt;script&gt;" in html
    stripped = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)
    assert "http" not in stripped and not re.search(r"(src|href)=", stripped.replace('src=""', ""))
    chart = re.search(r'<table class="nine">(.*?)</table>', html, re.S).group(1)
    rows = re.findall(r"<tr>(.*?)</tr>", chart, re.S)
    grid = [re.findall(r'data-gaze="([a-z_]+)"', row) for row in rows]
    # Examiner's view: the patient's right gaze on the chart's left, up at the top.
    assert grid == [["up_right", "up", "up_left"], ["right", "primary", "left"], ["down_right", "down", "down_left"]]
    cells = dict(re.findall(r'data-gaze="([a-z_]+)">(.*?)</td>', chart, re.S))
    left = r["nine_gaze"]["left"]["deviation"]["horizontal_pd"]["value"]
    assert f"{left:.1f} PD ET" in cells["left"] and f"{left:.1f} PD ET" not in cells["right"]


def _write_exam(tmp_path, record: dict, rows: list[dict]):
    path = tmp_path / "exam-1.json"
    with ParamLog(tmp_path / record["params_file"], PARAM_NAMES) as log:
        for row in rows:
            log.write(row["frame"], row["time"], row["face_found"],
                      {n: row[n] for n in PARAM_NAMES} if row["face_found"] else None)
    path.write_text(json.dumps(record))
    return path


def test_cli_round_trip(tmp_path, eso_exam) -> None:
    record, rows, results = eso_exam
    path = _write_exam(tmp_path, record, rows)
    assert main(["exam", str(path)]) == 0
    written = json.loads((tmp_path / "exam-1.results.json").read_text())
    primary = written["nine_gaze"]["primary"]["deviation"]["horizontal_pd"]
    assert primary["value"] == pytest.approx(results["nine_gaze"]["primary"]["deviation"]["horizontal_pd"]["value"], abs=1e-4)
    assert (tmp_path / "exam-1.report.html").read_text().startswith("<!DOCTYPE html>")
    # The CSV form of the log reads back as the same rows.
    csv_rows = read_params(_write_csv(tmp_path, rows[:50]))
    assert [r["eye_r_horizontal_deg"] for r in csv_rows] == pytest.approx([r["eye_r_horizontal_deg"] for r in rows[:50]])


def _write_csv(tmp_path, rows: list[dict]):
    path = tmp_path / "some.csv"
    with ParamLog(path, PARAM_NAMES) as log:
        for row in rows:
            log.write(row["frame"], row["time"], True, {n: row[n] for n in PARAM_NAMES})
    return path


@pytest.mark.parametrize("case", ["missing record", "garbage record", "not an exam", "missing params", "garbage params"])
def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, case: str) -> None:
    record, rows = exam(Patient(), runs=schedule(["calibration_primary"]))
    path = _write_exam(tmp_path, record, rows)
    if case == "missing record":
        path = tmp_path / "nothing.json"
    elif case == "garbage record":
        path.write_text("{not json")
    elif case == "not an exam":
        path.write_text(json.dumps({"format": "something else"}))
    elif case == "missing params":
        (tmp_path / record["params_file"]).unlink()
    else:
        (tmp_path / record["params_file"]).write_text('{"frame": 0, "time": 0.0, "face_found": true}\nnot json\n')
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["exam", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dmask: error:")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_patient_staring_at_the_camera_fails_calibration_and_falls_back(staring_exam) -> None:
    """The eyes look at the camera whatever the target does: the calibration's gain is near zero
    (the old analysis took it as the eye's and put every angle beyond the model's reach)."""
    record, _, r = staring_exam
    for lag in r["lid_lag"]["pursuit_down"]["eyes"].values():  # no lid lag read off a cloud of noise
        assert lag["verdict"] == "no data" and lag["reason"].startswith("the eye did not follow the target")
    for s in "rl":
        eye = r["calibration"]["eyes"][s]
        assert eye["valid"] == {"horizontal": False, "vertical": False}
        assert eye["gain_source"] == {"horizontal": FAILED, "vertical": FAILED}
        for axis in ("horizontal", "vertical"):
            assert eye["gain_failure"][axis].startswith("the eyes did not follow the targets: their reading moved")
            rho = eye[f"rho_{axis}_mm"]
            assert rho["value"] == pytest.approx(IRIS_DEPTH_MM) and rho["sd"] == pytest.approx(GENERIC_GAIN_SD * IRIS_DEPTH_MM, rel=0.2)
    warnings = r["summary"]["warnings"]
    assert any(w.startswith("Calibration failed (right eye, horizontal): the eyes did not follow the targets") for w in warnings)
    assert any("generic eye model" in w and "repeat the calibration steps" in w for w in warnings)
    html = report_html(r, record)
    assert html.index("Calibration failed (right eye, horizontal)") < html.index("<h2>Calibration</h2>")  # heads the report
    _assert_no_nan(r, record)
    _assert_measured_cells_have_values(r)
    # Every gaze step is measured: the figures are the generic model's angles. Both eyes look at the
    # camera, so they are aligned (the truth: no deviation), each far from a side target.
    for pos, cell in r["nine_gaze"].items():
        assert cell["status"] == "measured", pos
        for axis in ("horizontal", "vertical"):
            assert abs(cell["deviation"][f"{axis}_pd"]["value"]) < 3.0, (pos, axis)
    for s in "rl":
        assert r["nine_gaze"]["right"]["eyes"][s]["vs_target_horizontal_deg"]["value"] > 10.0  # the eyes stayed left of it
        assert r["nine_gaze"]["up"]["eyes"][s]["vs_target_vertical_deg"]["value"] < -3.0      # and below it
    assert r["findings"][0].startswith("Primary gaze: no deviation beyond 2 sd")


def test_staring_patient_without_cover_steps_has_the_population_uncertainty(staring_exam) -> None:
    """Neither the gain nor the offsets measured: finite deviations with the generic model's sd, above 10 PD horizontally."""
    record, rows, _ = staring_exam
    r = analyse(record | {"steps": [s for s in record["steps"] if s["name"] not in COVER_STEPS]}, rows)
    _assert_no_nan(r, record)
    _assert_measured_cells_have_values(r)
    for pos, cell in r["nine_gaze"].items():
        h = cell["deviation"]["horizontal_pd"]
        assert cell["status"] == "measured" and abs(h["value"]) < 2 * h["sd"] and h["sd"] > 10.0, pos
    assert r["findings"][0].endswith("not calibrated: do the cover test.")


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("case", ["few frames", "constant readings", "beyond reach"])
def test_degenerate_records_give_no_exception_and_no_nan(case: str) -> None:
    """Steps of 11 frames after settling; readings frozen at 0 (the gain's least squares: a flat line);
    one step reading beyond a small eye's reach (70°, where rho = 8 mm reaches 50°)."""
    settle = {s.name: s.settle_s for s in STEPS}
    runs = [run | {"end_s": round(run["start_s"] + settle[run["name"]] + 0.35, 3)} for run in schedule()] if case == "few frames" else None
    record, rows = exam(Patient(rho_mm=np.full((2, 2), 8.0)), runs=runs)
    if case == "constant readings":
        rows = [row | {f"eye_{s}_{axis}_deg": 0.0 for s in "rl" for axis in ("horizontal", "vertical")} for row in rows]
    if case == "beyond reach":
        run = next(run for run in record["steps"] if run["name"] == "gaze_left")
        rows = [row | ({"eye_r_horizontal_deg": 70.0} if run["start_s"] <= row["time"] <= run["end_s"] else {}) for row in rows]
    r = analyse(record, rows)
    _assert_no_nan(r, record)
    _assert_measured_cells_have_values(r)
    if case == "constant readings":
        assert all(r["calibration"]["eyes"][s]["valid"] == {"horizontal": False, "vertical": False} for s in "rl")
        assert "reading moved 0.0°" in r["calibration"]["eyes"]["r"]["gain_failure"]["horizontal"]
    else:  # a valid calibration, each step measured (or, beyond reach, not measured with the reason)
        assert all(r["calibration"]["eyes"][s]["valid"] == {"horizontal": True, "vertical": True} for s in "rl")
        assert r["summary"]["not_measured"] == ([] if case == "few frames" else [
            {"step": "gaze_left", "reason": r["nine_gaze"]["left"]["reason"]}])
    if case == "beyond reach":
        left = r["nine_gaze"]["left"]
        assert left["status"] == "not measured" and "right eye's horizontal reading 70.0° is beyond the eye model's reach" in left["reason"]
        assert left["deviation"]["horizontal_pd"]["value"] is None and left["deviation"]["vertical_pd"]["value"] is not None


def test_after_the_exam_live_frames_read_in_the_calibrated_frame(eso_exam, staring_exam) -> None:
    """The esotropia patient's calibration, applied to later frames of the same patient looking at
    the camera (no target known): the right eye's 10 degrees in come out as such."""
    _, _, results = eso_exam
    model = eye_model(results)
    assert model is not None
    assert eye_model(staring_exam[2]) is None  # a failed calibration is not applied
    record, rows = exam(dataclasses.replace(ESO, stares_at_camera=True), seed=5)
    face = GenericFace.load()
    rest = next(r for r in record["steps"] if r["name"] == "rest")
    deviations, plain = [], []
    for row in rows:
        if not rest["start_s"] <= row["time"] <= rest["end_s"]:
            continue
        rotation = head_rotation(row["head_yaw_deg"], row["head_pitch_deg"], row["head_roll_deg"])
        camera = fixation_angles(face, rotation, np.array([row[f"head_{k}_mm"] for k in "xyz"]), np.zeros(3))
        values = row | {"vergence_deg": float(camera[0, 0] - camera[1, 0])}
        out = calibrated_values(model, values)
        deviations.append(out["calibrated_deviation_horizontal_deg"])
        plain.append(values["eye_r_horizontal_deg"] - values["eye_l_horizontal_deg"] - values["vergence_deg"])
    assert len(deviations) > 500
    assert np.median(deviations) == pytest.approx(10.0, abs=1.0)
    assert abs(np.median(plain) - 10.0) > 1.5  # uncalibrated, this patient's anatomy reads otherwise
