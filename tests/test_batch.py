"""`dmask mask` on an archive: several files, a folder or a glob, on parallel workers, resumable.

The inputs are short cuts of a real clip (p08, 256x256) written to a temporary
folder, plus a file that is no video; every batch runs as a user runs it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import av
import pytest

from conftest import DATA, DMASK, assert_refused, run_dmask

from dmask_rt.batch import expand_inputs, plan
from dmask_rt.video.decode import VideoInputError, VideoReader

P08 = DATA / "videos" / "p08_low_res_256.mp4"
CUT = 20  # frames per short clip


def cut(source: Path, dest: Path, frames: int) -> Path:
    """The first `frames` frames of `source` re-encoded into `dest` (a temporary folder, never the repo)."""
    with av.open(str(source)) as inp, av.open(str(dest), "w") as out:
        stream = inp.streams.video[0]
        o = out.add_stream("libx264", rate=stream.average_rate)
        o.width, o.height, o.pix_fmt = stream.width, stream.height, "yuv420p"
        for i, frame in enumerate(inp.decode(stream)):
            if i == frames:
                break
            new = av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")
            new.pts = i
            out.mux(o.encode(new))
        out.mux(o.encode(None))
    return dest


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of two 20-frame cuts (a.mp4, b.mp4) and bad.mp4, a text file."""
    folder = tmp_path_factory.mktemp("clips")
    cut(P08, folder / "a.mp4", CUT)
    cut(P08, folder / "b.mp4", CUT)
    (folder / "bad.mp4").write_text("not a video\n")
    return folder


def frames_of(path: Path) -> list:
    with VideoReader(path) as reader:
        return [f.rgb for f in reader]


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture(scope="module")
def two_workers(clips: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """The batch a, b, bad on 2 workers with JSONL parameters and a JSON summary."""
    work = tmp_path_factory.mktemp("two_workers")
    result = run_dmask("mask", clips / "a.mp4", clips / "b.mp4", clips / "bad.mp4", "--workers", "2",
                       "--params", "jsonl", "--summary", "summary.json", "-o", "masked", cwd=work)
    return work, result


def test_batch_masks_good_files_reports_the_bad_one_and_exits_2(clips: Path, two_workers: tuple) -> None:
    work, result = two_workers
    assert result.returncode == 2, result.stderr
    assert files_under(work) == ["masked", "masked/a.masked.mp4", "masked/a.params.jsonl",
                                 "masked/b.masked.mp4", "masked/b.params.jsonl", "summary.json"]
    for name in ("a", "b"):
        assert len(frames_of(work / "masked" / f"{name}.masked.mp4")) == CUT
        assert len((work / "masked" / f"{name}.params.jsonl").read_text().splitlines()) == CUT
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"done    {clips / 'a.mp4'}: {CUT} frames")
    assert lines[2].startswith(f"failed  {clips / 'bad.mp4'}: not a video ffmpeg can read")
    assert lines[3].startswith("3 files: 2 done, 0 skipped, 1 failed")

    summary = json.loads((work / "summary.json").read_text())
    by_status = {f["input"]: f["status"] for f in summary["files"]}
    assert by_status == {str(clips / "a.mp4"): "done", str(clips / "b.mp4"): "done", str(clips / "bad.mp4"): "failed"}
    done = [f for f in summary["files"] if f["status"] == "done"]
    assert all(f["frames"] == CUT and 0 < f["faces"] <= CUT and f["fps"] > 0 for f in done)
    assert all(f["params"] == str(Path("masked") / f"{Path(f['input']).stem}.params.jsonl") for f in done)
    assert "not a video" in summary["files"][2]["reason"] and summary["files"][2]["output"] is None
    totals = summary["totals"]
    assert (totals["done"], totals["skipped"], totals["failed"], totals["frames"], totals["workers"]) == (2, 0, 1, 2 * CUT, 2)
    assert totals["fps"] > 0 and not totals["interrupted"]


def test_rerun_skips_finished_files_without_reencoding(clips: Path, two_workers: tuple) -> None:
    work, _ = two_workers
    outputs = sorted((work / "masked").iterdir())
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in outputs}
    result = run_dmask("mask", clips / "a.mp4", clips / "b.mp4", clips / "bad.mp4", "--params", "jsonl",
                       "-o", "masked", "--summary", "rerun.json", "--quiet", cwd=work)
    assert result.returncode == 2 and result.stdout == ""
    assert "failed  " in result.stderr and "bad.mp4: not a video" in result.stderr  # quiet still says why
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted((work / "masked").iterdir())} == before
    statuses = [f["status"] for f in json.loads((work / "rerun.json").read_text())["files"]]
    assert statuses == ["skipped", "skipped", "failed"]


def test_two_workers_give_the_same_outputs_as_one(clips: Path, two_workers: tuple, tmp_path: Path) -> None:
    # A folder as input: its videos (bad.mp4 has a video extension and fails), nothing else.
    (clips / "notes.txt").write_text("not a video, not taken\n")
    try:
        result = run_dmask("mask", clips, "--workers", "1", "--params", "jsonl", "--quiet", cwd=tmp_path)
    finally:
        (clips / "notes.txt").unlink()
    assert result.returncode == 2, result.stderr
    assert files_under(tmp_path) == ["out", "out/a.masked.mp4", "out/a.params.jsonl", "out/b.masked.mp4", "out/b.params.jsonl"]
    two = two_workers[0] / "masked"
    for name in ("a", "b"):
        one_frames, two_frames = frames_of(tmp_path / "out" / f"{name}.masked.mp4"), frames_of(two / f"{name}.masked.mp4")
        assert len(one_frames) == len(two_frames) == CUT
        assert all((x == y).all() for x, y in zip(one_frames, two_frames))
        assert (tmp_path / "out" / f"{name}.params.jsonl").read_text() == (two / f"{name}.params.jsonl").read_text()


def test_glob_input_masks_what_it_matches(clips: Path, tmp_path: Path) -> None:
    result = run_dmask("mask", str(clips / "[a]*.mp4"), "-o", "masked", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert files_under(tmp_path) == ["masked", "masked/a.masked.mp4"]
    assert len(frames_of(tmp_path / "masked" / "a.masked.mp4")) == CUT
    assert result.stdout.splitlines()[-1].startswith("1 files: 1 done, 0 skipped, 0 failed")


def test_interrupted_batch_leaves_no_partial_file(tmp_path: Path) -> None:
    long = cut(P08, tmp_path / "long.mp4", 400)
    work = tmp_path / "work"
    work.mkdir()
    # Ctrl-C at a terminal: the child starts with SIGINT at its default. Run from a background
    # job without job control (a CI runner's `cmd &`), pytest and its children inherit it
    # ignored, and Python then leaves it ignored: the batch ran to its end (exit 2).
    job = subprocess.Popen([*DMASK, "mask", long, long.with_name("missing.mp4"), "--workers", "1", "--quiet"],
                           cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not list((work / "out").glob(".long.masked.*.part.mp4")):  # the worker is writing
        assert job.poll() is None and time.monotonic() < deadline, "the batch ended before it was interrupted"
        time.sleep(0.05)
    job.send_signal(signal.SIGINT)
    _, stderr = job.communicate(timeout=60)
    assert job.returncode == 130 and stderr.endswith("dmask: interrupted\n"), stderr
    assert files_under(work) == ["out"]


# --- expanding and planning the inputs (no masking) --------------------------------------

def test_expand_folder_glob_and_duplicates(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name in ("x.mp4", "y.MOV", "notes.txt", "sub/z.mp4"):
        (tmp_path / name).touch()
    files, empty = expand_inputs([str(tmp_path), str(tmp_path / "*.mp4")])
    assert files == [tmp_path / "x.mp4", tmp_path / "y.MOV"] and empty == []  # x.mp4 once
    files, _ = expand_inputs([str(tmp_path)], recursive=True)
    assert files == [tmp_path / "sub" / "z.mp4", tmp_path / "x.mp4", tmp_path / "y.MOV"]
    files, empty = expand_inputs([str(tmp_path / "x.mp4"), str(tmp_path / "*.avi"), str(tmp_path / "sub" / "none.mp4")])
    assert files == [tmp_path / "x.mp4", tmp_path / "sub" / "none.mp4"]  # a named file is the worker's to judge
    assert [(r.input, r.status, r.reason) for r in empty] == [(str(tmp_path / "*.avi"), "failed", "matches no file")]
    with pytest.raises(VideoInputError, match="matches no file"):
        expand_inputs([str(tmp_path / "*.avi")])


def test_plan_refuses_two_inputs_with_one_output_name(tmp_path: Path) -> None:
    jobs, failed = plan([tmp_path / "a" / "v.mp4", tmp_path / "b" / "v.mov", tmp_path / "w.mp4"], tmp_path / "out", "csv", False)
    assert [(j.source.name, j.output.name, j.params.name) for j in jobs] == [("v.mp4", "v.masked.mp4", "v.params.csv"),
                                                                             ("w.mp4", "w.masked.mp4", "w.params.csv")]
    assert [(f.input, f.status) for f in failed] == [(str(tmp_path / "b" / "v.mov"), "failed")]
    assert "same output name" in failed[0].reason


@pytest.mark.parametrize(("args", "reason"), [
    (["--params", "params.csv"], "names the format"),
    (["-o", "masked.mp4"], "not a directory"),
    (["--summary", "summary.txt"], "unsupported extension"),
])
def test_unusable_batch_options_are_refused_and_nothing_written(clips: Path, tmp_path: Path, args: list[str], reason: str) -> None:
    result = run_dmask("mask", clips / "a.mp4", clips / "b.mp4", *args, cwd=tmp_path)
    assert_refused(result, reason)
    assert files_under(tmp_path) == []


def test_batch_options_on_a_single_file_are_refused(clips: Path, tmp_path: Path) -> None:
    assert_refused(run_dmask("mask", clips / "a.mp4", "--workers", "2", cwd=tmp_path), "are for batches")
    assert files_under(tmp_path) == []
