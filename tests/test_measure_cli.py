"""`dmask measure VIDEO`: summary, per-frame CSV and plot from a real clip; bad input refused."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from conftest import DATA, assert_refused, run_dmask

from dmask_rt.measure.series import COLUMNS

CLIP = DATA / "videos" / "p09_webcam.mp4"  # 72 frames, one face throughout


def test_measure_writes_summary_csv_and_plot(tmp_path: Path) -> None:
    result = run_dmask("measure", CLIP, "--csv", "m.csv", "--plot", "m.png", "--json", "s.json", "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Lids" in result.stdout and "Nystagmus" in result.stdout
    with open(tmp_path / "m.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 72
    assert list(rows[0]) == ["frame", "time", "face_found", *COLUMNS]
    assert all(r["face_found"] == "true" and float(r["mrd1_r_mm"]) == float(r["mrd1_r_mm"]) for r in rows)
    assert (tmp_path / "m.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["frames"] == 72 and summary["frames_with_face"] == 72
    assert set(summary["nystagmus"]) == {"r", "l", "both"}


def test_measure_defaults_to_out_dir(tmp_path: Path) -> None:
    result = run_dmask("measure", CLIP, "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p09_webcam.measures.csv", "p09_webcam.measures.png"]


def test_measure_refuses_a_missing_video_and_writes_nothing(tmp_path: Path) -> None:
    result = run_dmask("measure", tmp_path / "absent.mp4", cwd=tmp_path)
    assert_refused(result, "absent.mp4")
    assert list(tmp_path.iterdir()) == []


def test_measure_refuses_a_bad_csv_suffix(tmp_path: Path) -> None:
    result = run_dmask("measure", CLIP, "--csv", "m.txt", cwd=tmp_path)
    assert_refused(result, "m.txt")
    assert list(tmp_path.iterdir()) == []
