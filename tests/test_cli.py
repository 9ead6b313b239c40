"""`dmask` as a user runs it (real subprocesses): bad inputs and outputs, full jobs, logs.

Every unusable input or output must give exit code 2, one line on stderr and no
file at all: no output, no parameter log, no temporary file, no out/ folder.
"""

from __future__ import annotations

import csv
import json
import shutil
import signal
import subprocess
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import DATA, DMASK, assert_refused, run_dmask

from dmask_rt.cli import DEFAULT_CLIP, main
from dmask_rt.paramlog import ParamLog
from dmask_rt.pipeline import Masker
from dmask_rt.video import encode
from dmask_rt.video.decode import VideoReader

VIDEOS = DATA / "videos"
WEBCAM = VIDEOS / "p09_webcam.mp4"  # 640x360, 72 frames
VFR = VIDEOS / "p09_cartoon_then_face_vfr.mov"  # 960x540 HEVC, 169 frames, variable rate


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# --- unusable inputs -------------------------------------------------------------------

def _missing(path: Path) -> None:
    pass


def _directory(path: Path) -> None:
    path.mkdir()


def _unreadable(path: Path) -> None:
    path.write_bytes(WEBCAM.read_bytes())
    path.chmod(0o000)


def _empty(path: Path) -> None:
    path.touch()


def _text(path: Path) -> None:
    path.write_text("this is a text file, not a video\n")


def _no_video_stream(path: Path) -> None:
    # An .mp4 whose only (video) track never got a sample: the muxer drops the track.
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        out.start_encoding()


def _zero_frames(path: Path) -> None:
    # AVI keeps a video stream that has no frames (mp4/mov drop it, see above).
    with av.open(str(path), "w", format="avi") as out:
        stream = out.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        out.start_encoding()


def _beyond_8k(path: Path) -> None:
    # One black 7682x16 frame: 2 pixels wider than 8K UHD, a few hundred bytes.
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 7682, 16, "yuv420p"
        frame = av.VideoFrame.from_ndarray(np.zeros((16, 7682, 3), np.uint8), format="rgb24")
        frame.pts = 0
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


BAD_INPUTS = {
    "missing.mp4": (_missing, "no such file"),
    "folder.mp4": (_directory, "is a directory"),
    "unreadable.mp4": (_unreadable, "permission denied"),
    "empty.mp4": (_empty, "empty file"),
    "text.mp4": (_text, "not a video ffmpeg can read"),
    "no_stream.mp4": (_no_video_stream, "no video stream"),
    "zero_frames.avi": (_zero_frames, "the video has no frames"),
    "beyond_8k.mp4": (_beyond_8k, "beyond 8K"),
}


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_unusable_input_is_refused_and_nothing_written(name: str, tmp_path: Path) -> None:
    make, reason = BAD_INPUTS[name]
    inputs, work = tmp_path / "inputs", tmp_path / "work"
    inputs.mkdir(), work.mkdir()
    make(inputs / name)
    # Default output (out/<stem>.masked.mp4) and a parameter log: neither, nor out/, may appear.
    result = run_dmask("mask", inputs / name, "--params", "params.jsonl", cwd=work, as_plain_user=True)
    assert_refused(result, reason)
    assert files_under(work) == []


def test_missing_default_clip_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Run main() in-process with the default clip pointed elsewhere (the real one exists).
    from dmask_rt import cli

    monkeypatch.setattr(cli, "DEFAULT_CLIP", tmp_path / "nowhere.mp4")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["mask"]) == 2
    assert files_under(tmp_path) == []


# --- unusable outputs ------------------------------------------------------------------

def _readonly_dir(work: Path) -> str:
    (work / "locked").mkdir(mode=0o555)
    return "locked/masked.mp4"


def _existing_dir(work: Path) -> str:
    (work / "masked.mp4").mkdir()
    return "masked.mp4"


BAD_OUTPUTS = {
    "missing directory": (lambda work: "no/such/dir/masked.mp4", "does not exist"),
    "a directory": (_existing_dir, "is a directory"),
    "read-only directory": (_readonly_dir, "is not writable"),
    "not a video extension": (lambda work: "masked.avi", "unsupported extension"),
}


@pytest.mark.parametrize("case", BAD_OUTPUTS)
def test_unusable_output_is_refused_and_nothing_written(case: str, tmp_path: Path) -> None:
    make, reason = BAD_OUTPUTS[case]
    output = make(tmp_path)
    before = files_under(tmp_path)
    result = run_dmask("mask", WEBCAM, "-o", output, cwd=tmp_path, as_plain_user=True)
    assert_refused(result, reason)
    assert files_under(tmp_path) == before


@pytest.mark.parametrize(("params", "reason"), [
    ("params.txt", "unsupported extension"),
    ("no/dir/params.csv", "does not exist"),
])
def test_unusable_params_path_is_refused_and_nothing_written(params: str, reason: str, tmp_path: Path) -> None:
    result = run_dmask("mask", WEBCAM, "-o", "masked.mp4", "--params", params, cwd=tmp_path)
    assert_refused(result, reason)
    assert files_under(tmp_path) == []


def test_output_over_the_input_is_refused(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(WEBCAM.read_bytes())
    result = run_dmask("mask", clip, "-o", clip, cwd=tmp_path)
    assert_refused(result, "is the input")
    assert files_under(tmp_path) == ["clip.mp4"] and clip.read_bytes() == WEBCAM.read_bytes()


# --- full jobs (the real pipeline) -----------------------------------------------------

def input_times(path: Path) -> list[float]:
    with VideoReader(path) as reader:
        return [f.time for f in reader]


def test_mask_writes_same_frames_size_and_jsonl_params(tmp_path: Path) -> None:
    result = run_dmask("mask", WEBCAM, "-o", "masked.mp4", "--params", "params.jsonl", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert files_under(tmp_path) == ["masked.mp4", "params.jsonl"]
    with VideoReader(tmp_path / "masked.mp4") as reader:
        frames = list(reader)
    assert len(frames) == 72 and (reader.width, reader.height) == (640, 360)
    assert [f.time for f in frames] == input_times(WEBCAM)
    rows = [json.loads(line) for line in (tmp_path / "params.jsonl").read_text().splitlines()]
    assert len(rows) == 72
    assert all(list(row) == ["frame", "time", "face_found", *Masker.PARAM_NAMES] for row in rows)
    assert [row["frame"] for row in rows] == list(range(72))
    assert [row["time"] for row in rows] == [round(t, 6) for t in input_times(WEBCAM)]
    assert sum(row["face_found"] for row in rows) > 60  # one person facing the camera throughout
    for row in rows:
        values = [row[name] for name in Masker.PARAM_NAMES]
        assert all(isinstance(v, float) for v in values) if row["face_found"] else all(v is None for v in values)


def test_mask_side_by_side_vfr_with_csv_params(tmp_path: Path) -> None:
    result = run_dmask("mask", VFR, "-o", "review.mp4", "--params", "params.csv", "--side-by-side", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "169 frames" in result.stdout
    with VideoReader(tmp_path / "review.mp4") as reader:
        frames = list(reader)
    with VideoReader(VFR) as reader:
        originals = [f.rgb for f in reader]
    assert len(frames) == 169 and frames[0].rgb.shape == (540, 1920, 3)
    assert [f.time for f in frames] == input_times(VFR)  # variable frame rate kept
    left = frames[100].rgb[:, :960].astype(int)
    assert np.abs(left - originals[100]).mean() < 3  # left half is the original
    with open(tmp_path / "params.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 169
    assert list(rows[0]) == ["frame", "time", "face_found", *Masker.PARAM_NAMES]
    found = [row["face_found"] == "true" for row in rows]
    assert not all(found) and any(found)  # cartoon first, then the face appears
    for row, face in zip(rows, found):
        assert all((row[name] != "") == face for name in Masker.PARAM_NAMES)


def test_mask_default_clip_to_default_output(tmp_path: Path) -> None:
    # README's main command: `dmask mask` with no arguments.
    result = run_dmask("mask", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    output = tmp_path / "out" / f"{DEFAULT_CLIP.stem}.masked.mp4"
    assert files_under(tmp_path) == ["out", str(output.relative_to(tmp_path))]
    with VideoReader(output) as reader:
        assert sum(1 for _ in reader) == 536 and (reader.width, reader.height) == (512, 512)


def test_interrupted_job_leaves_nothing(tmp_path: Path) -> None:
    # In a fresh checkout the first job compiles the fit, and llvmlite swallows a Ctrl-C
    # that lands inside its compiler callbacks; a finished short job fills Numba's cache
    # first, so the interrupt reaches dmask's own loop.
    warm = tmp_path / "warm"
    warm.mkdir()
    assert run_dmask("mask", DATA / "videos" / "p09_webcam.mp4", "-o", "w.mp4", "--quiet", cwd=warm).returncode == 0
    shutil.rmtree(warm)
    job = subprocess.Popen([*DMASK, "mask", "-o", "masked.mp4", "--params", "params.csv", "--quiet"],
                           cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".masked.*.part.mp4")):  # the job has started writing
        assert job.poll() is None and time.monotonic() < deadline, "the job ended before it was interrupted"
        time.sleep(0.05)
    job.send_signal(signal.SIGINT)  # what Ctrl-C sends
    _, stderr = job.communicate(timeout=60)
    assert job.returncode == 130 and stderr.endswith("dmask: interrupted\n"), stderr
    assert files_under(tmp_path) == []


def test_interrupt_between_creating_and_guarding_a_file_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The race the real Ctrl-C above can hit: the writer's temporary file exists, but the
    # `with` that would delete it is not entered yet.
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt
    monkeypatch.setattr(encode, "H264Encoder", interrupted)
    monkeypatch.chdir(tmp_path)
    assert main(["mask", str(DATA / "videos" / "p09_webcam.mp4"), "-o", "masked.mp4", "--params", "params.csv", "--quiet"]) == 130
    assert files_under(tmp_path) == []


def test_bench_reports_every_stage_as_json(tmp_path: Path) -> None:
    result = run_dmask("bench", "--frames", 7, "--json", "bench.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report == json.loads((tmp_path / "bench.json").read_text())
    assert len(report["runs"]) == 16  # p01..p08, native and 640x480
    for size in ("native", "640x480"):
        summary = report["overall"][size]
        assert summary["frames"] == 8 * 2 and summary["fps"] > 0
        assert set(summary["stages"]) == {"decode", "track", "fit", "render", "encode", "mask", "passthrough", "total"}
        assert summary["stages"]["decode"]["median_ms"] > 0 and summary["stages"]["encode"]["p99_ms"] > 0
    assert "median ms" in result.stderr


# --- parameter log format --------------------------------------------------------------

@pytest.mark.parametrize(("suffix", "expected"), [
    (".jsonl", '{"frame": 0, "time": 0.033333, "face_found": true, "yaw": 1.5, "blink": 0.25}\n'
               '{"frame": 1, "time": 0.066667, "face_found": false, "yaw": null, "blink": null}\n'),
    (".csv", "frame,time,face_found,yaw,blink\r\n0,0.033333,true,1.5,0.25\r\n1,0.066667,false,,\r\n"),
])
def test_param_log_known_answer(suffix: str, expected: str, tmp_path: Path) -> None:
    path = tmp_path / f"params{suffix}"
    with ParamLog(path, ("yaw", "blink")) as log:
        log.write(0, float(Fraction(1, 30)), True, {"yaw": np.float32(1.5), "blink": 0.25})
        log.write(1, float(Fraction(2, 30)), False, None)
        assert not path.exists()  # appears only when complete
    assert path.read_bytes().decode() == expected


def test_param_log_rejects_unknown_names_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not in PARAM_NAMES"):
        with ParamLog(tmp_path / "params.csv", ("yaw",)) as log:
            log.write(0, 0.0, True, {"yaw": 1.0, "roll": 2.0})
    assert files_under(tmp_path) == []
