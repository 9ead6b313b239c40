"""Batch masking of an archive: many videos masked in parallel worker processes, resumable.

`dmask mask` with several inputs, a folder or a glob comes here. Each input
becomes `<out>/<stem>.masked.mp4` (and `<stem>.params.<fmt>` if asked), masked
exactly as a single file is. Why it is built this way:

- Worker processes (spawn start method): the tracker, fit and renderer hold
  native state (TFLite interpreters, a GL context) that must not be forked, and
  processes use every core where threads would share the GIL.
- A fresh Masker per file (the process keeps only the loaded face model): the
  Masker tracks a face across frames, so reusing it would make a file's first
  frames depend on which file its worker did before; this way the outputs are
  the same whatever the number of workers.
- Resumable: outputs are written atomically (`video/outfile.py`), so a file at
  the final path is complete; such inputs are skipped. Ctrl-C sets a stop flag
  that every worker checks between frames: the open outputs are discarded, and
  any temporary file a killed worker might leave is swept afterwards.
- One file's error (unreadable, not a video, no frames, a crash) fails that
  file only; the batch goes on and the summary says why.
- With `--cluster ADDRESS` the files are Ray tasks of one CPU each on any node of
  that cluster instead (`_run_ray`; Ray is imported only then): the same masking,
  progress and stop flag through a small Ray actor, and the inputs and outputs on
  storage every node shares.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import multiprocessing
import os
import queue
import signal
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import av
from tqdm import tqdm

from .video.decode import VideoInputError, VideoReader
from .video.outfile import OutputPathError, write_atomically

# What a folder contributes: files with these extensions (case-insensitive).
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts",
                            ".wmv", ".flv", ".3gp"})
PARAM_FORMATS = ("jsonl", "csv")
OUTPUT_SUFFIX = ".masked.mp4"
_GLOB_CHARS = frozenset("*?[")
_POLL_S = 0.1  # how often the parent drains progress messages


def is_batch(inputs: Sequence[str]) -> bool:
    """True when the INPUT arguments name a batch: several, a folder, or a pattern matching no path as such."""
    if len(inputs) != 1:
        return len(inputs) > 1
    path = Path(inputs[0])
    return path.is_dir() or (not path.exists() and bool(_GLOB_CHARS & set(inputs[0])))


@dataclass
class FileResult:
    """What became of one input; `status` is "done", "skipped" or "failed" (then `reason` says why)."""

    input: str
    status: str
    output: str | None = None  # None when the input failed: nothing was written
    params: str | None = None
    reason: str = ""
    frames: int = 0
    faces: int = 0
    fps: float | None = None

    def line(self) -> str:
        """One human-readable summary line."""
        text = f"{self.status:7s} {self.input}"
        if self.status == "failed":
            return f"{text}: {self.reason}"
        if self.status == "skipped":
            return f"{text}: {self.reason} -> {self.output}"
        share = 100 * self.faces / self.frames if self.frames else 0.0
        return f"{text}: {self.frames} frames, {self.faces} with a face ({share:.0f}%), {self.fps:.1f} fps -> {self.output}"


@dataclass(frozen=True)
class Job:
    """One input to mask and where its outputs go."""

    index: int
    source: Path
    output: Path
    params: Path | None
    side_by_side: bool


@dataclass
class BatchReport:
    """Every input's result in input order, and the batch's own figures."""

    files: list[FileResult]
    workers: int
    seconds: float
    interrupted: bool = False

    @property
    def frames(self) -> int:
        """Frames masked in this run (skipped files not counted)."""
        return sum(r.frames for r in self.files if r.status == "done")

    @property
    def fps(self) -> float:
        """Throughput of the whole batch: frames masked per wall-clock second, start-up included."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def ok(self) -> bool:
        """Every input was masked or already had its output."""
        return not self.interrupted and all(r.status in ("done", "skipped") for r in self.files)

    def counts(self) -> dict[str, int]:
        """How many inputs ended in each status."""
        return {s: sum(r.status == s for r in self.files) for s in ("done", "skipped", "failed")}

    def to_json(self) -> dict[str, Any]:
        """The JSON summary (`--summary FILE.json`)."""
        return {"files": [asdict(r) for r in self.files],
                "totals": {**self.counts(), "frames": self.frames, "seconds": round(self.seconds, 3),
                           "fps": round(self.fps, 2), "workers": self.workers, "interrupted": self.interrupted}}

    def summary(self) -> str:
        """One line per file, then the totals."""
        counts = self.counts()
        total = (f"{len(self.files)} files: {counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed; "
                 f"{self.frames} frames in {self.seconds:.1f} s = {self.fps:.1f} fps with {self.workers} worker(s)")
        return "\n".join([*(r.line() for r in self.files), total])


def expand_inputs(args: Sequence[str], recursive: bool = False) -> tuple[list[Path], list[FileResult]]:
    """The input files named by files, folders (their videos) and glob patterns, in order, once each.

    Arguments that yield nothing (a folder without videos, a pattern matching no
    file) come back as failed results; if nothing at all is left to mask, a
    VideoInputError is raised instead (the usual refusal: nothing is written).
    """
    files: list[Path] = []
    empty: list[FileResult] = []
    for arg in args:
        path = Path(arg)
        if path.is_dir():
            found = sorted(p for p in (path.rglob("*") if recursive else path.iterdir())
                           if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
            reason = "is a directory with no video files" + ("" if recursive else " (--recursive looks in subfolders)")
        elif path.exists() or not _GLOB_CHARS & set(arg):
            found, reason = [path], ""  # a named file: the worker reports it if it is no video
        else:
            found = sorted(Path(p) for p in glob.glob(arg, recursive=True) if Path(p).is_file())
            reason = "matches no file"
        if not found:
            empty.append(FileResult(arg, "failed", reason=reason))
        files.extend(found)
    unique = list(dict.fromkeys(files))  # a file named twice (a folder and a glob) is masked once
    if not unique:
        raise VideoInputError("; ".join(f"{r.input}: {r.reason}" for r in empty))
    return unique, empty


def plan(files: Sequence[Path], out_dir: Path, params_format: str | None,
         side_by_side: bool) -> tuple[list[Job], list[FileResult]]:
    """A job per input, and failed results for inputs whose output name another input already takes."""
    jobs: list[Job] = []
    failed: list[FileResult] = []
    taken: dict[Path, Path] = {}
    for source in files:
        output = out_dir / f"{source.stem}{OUTPUT_SUFFIX}"
        key = output.resolve()
        if key in taken:
            failed.append(FileResult(str(source), "failed", reason=f"same output name as {taken[key]}"))
            continue
        if key == source.resolve():
            failed.append(FileResult(str(source), "failed", reason="its output would replace it"))
            continue
        taken[key] = source
        params = out_dir / f"{source.stem}.params.{params_format}" if params_format else None
        jobs.append(Job(len(jobs), source, output, params, side_by_side))
    return jobs, failed


def is_complete(job: Job) -> bool:
    """Every output of `job` is at its final path (so was finished: writes are atomic) and the video opens."""
    if not job.output.is_file() or (job.params is not None and not job.params.is_file()):
        return False
    try:
        with av.open(str(job.output)) as container:
            return bool(container.streams.video)
    except (av.error.FFmpegError, OSError):
        return False  # not a video after all: masked again, and replaced


def _container_frames(path: Path) -> int:
    """The frame count a container states, 0 when it gives none or cannot be opened (for the ETA only)."""
    try:
        with av.open(str(path)) as container:
            return container.streams.video[0].frames if container.streams.video else 0
    except (av.error.FFmpegError, OSError):
        return 0


# --- the worker process ------------------------------------------------------------------

class _Stopped(Exception):
    """The parent asked the workers to stop (Ctrl-C)."""


_progress: Any = None  # multiprocessing queue of (job index, frames done since the last message)
_stop: Any = None      # multiprocessing event: set on Ctrl-C
_face: Any = None      # the generic face model, loaded once per process

#: report(job index, frames done since the last report) -> whether to stop
Report = Any


def masked_frames(frames: Iterable[Any], masker: Any, writer: Any, log: Any, side: bool) -> Iterator[bool]:
    """Mask every decoded frame of `frames` (a VideoReader, or a progress bar over one)
    into `writer` (original | avatar when `side`) and the parameter `log` (if any), as a
    single file and a batch do alike; yields, per frame, whether it showed a face."""
    from .video.compose import side_by_side

    for frame in frames:
        result = masker.process(frame.rgb)
        writer.write(side_by_side(frame.rgb, result.image) if side else result.image, frame.pts)
        if log is not None:
            log.write(frame.index, frame.time, result.face_found, result.params)
        yield result.face_found


def _init_worker(progress: Any, stop: Any) -> None:
    # Ctrl-C reaches the whole process group; the parent alone decides, through `stop`.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    global _progress, _stop
    _progress, _stop = progress, stop


def _pool_report(index: int, frames: int) -> bool:
    _progress.put((index, frames))
    return bool(_stop.is_set())


def _run_job(job: Job, report: Report = _pool_report) -> FileResult:
    """Mask one file in a worker; every error becomes a failed result naming the reason."""
    try:
        return _mask_file(job, report)
    except _Stopped:
        return FileResult(str(job.source), "failed", reason="interrupted")
    except (VideoInputError, OutputPathError) as err:
        reason = str(err).removeprefix(f"{job.source}: ")  # the summary line names the file already
        return FileResult(str(job.source), "failed", reason=reason)
    except Exception as err:  # noqa: BLE001 -- one bad file must not end the batch; its reason is kept
        return FileResult(str(job.source), "failed", reason=f"{type(err).__name__}: {err}")


def _mask_file(job: Job, report: Report) -> FileResult:
    global _face
    from .model.generic_face import GenericFace
    from .paramlog import ParamLog
    from .pipeline import Masker
    from .video.encode import VideoWriter

    if _face is None:
        _face = GenericFace.load()
    start = time.perf_counter()
    faces, unreported = 0, 0
    with contextlib.ExitStack() as stack:
        reader = stack.enter_context(VideoReader(job.source))
        masker = stack.enter_context(Masker(face=_face))
        writer = stack.enter_context(VideoWriter(job.output, reader.time_base, reader.rate))
        log = stack.enter_context(ParamLog(job.params, Masker.PARAM_NAMES)) if job.params else None
        for found in masked_frames(reader, masker, writer, log, job.side_by_side):
            faces += found
            unreported += 1
            if unreported == 10:  # a message every 10 frames keeps the bar live at little cost
                if report(job.index, unreported):
                    raise _Stopped  # the writers' context managers discard their temporary files
                unreported = 0
        frames = writer.frames
    report(job.index, unreported)
    elapsed = time.perf_counter() - start
    return FileResult(str(job.source), "done", str(job.output), str(job.params) if job.params else None,
                      frames=frames, faces=faces, fps=round(frames / elapsed, 2))


# --- the parent --------------------------------------------------------------------------

def run(jobs: Sequence[Job], *, workers: int, quiet: bool = False,
        early: Iterable[FileResult] = (), cluster: str | None = None) -> BatchReport:
    """Mask `jobs` on `workers` processes, or as tasks on the Ray `cluster`; `early` are
    results known before (failed expansions).

    Complete outputs are skipped. On Ctrl-C the workers stop between frames,
    their open outputs are discarded and the report says `interrupted`.
    """
    start = time.perf_counter()
    results: dict[int, FileResult] = {}
    todo: list[Job] = []
    for job in jobs:
        if is_complete(job):
            results[job.index] = FileResult(str(job.source), "skipped", str(job.output),
                                            str(job.params) if job.params else None, reason="output exists")
        else:
            todo.append(job)
    workers = max(1, min(workers, len(todo))) if cluster is None else workers
    frames = {job.index: _container_frames(job.source) for job in todo}
    todo.sort(key=lambda job: -frames[job.index])  # longest first: no long file left alone at the end
    bar = tqdm(total=sum(frames.values()) or None, unit="frame", disable=quiet or not todo,
               desc=f"files 0/{len(todo)}", dynamic_ncols=True)
    interrupted = False
    if todo:
        try:
            if cluster is None:
                results.update(_run_pool(todo, workers, bar))
            else:
                workers = _run_ray(todo, cluster, bar, results)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            bar.close()
            _sweep_partials(todo)
    for job in todo:
        results.setdefault(job.index, FileResult(str(job.source), "failed", reason="interrupted"))
    return BatchReport([*early, *(results[j.index] for j in jobs)], workers, time.perf_counter() - start, interrupted)


def _run_pool(todo: Sequence[Job], workers: int, bar: tqdm) -> dict[int, FileResult]:
    context = multiprocessing.get_context("spawn")
    progress, stop = context.Queue(), context.Event()
    results: dict[int, FileResult] = {}
    # Workers are spawned while SIGINT is ignored: an ignored signal stays ignored across exec,
    # so a Ctrl-C during their start-up cannot kill them half-way (the initializer keeps it so).
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(progress, stop))
    try:
        futures: dict[Future[FileResult], Job] = {pool.submit(_run_job, job): job for job in todo}
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        pending = set(futures)
        while pending:
            _drain(progress, bar)
            for future in [f for f in pending if f.done()]:
                pending.discard(future)
                job = futures[future]
                results[job.index] = _result_of(future, job)
                bar.set_description(f"files {len(results)}/{len(todo)}")
            time.sleep(_POLL_S)
        _drain(progress, bar)
    except KeyboardInterrupt:
        stop.set()
        for future in futures:
            future.cancel()
        pool.shutdown(wait=True)  # running files stop at their next frame
        raise
    pool.shutdown(wait=True)
    return results


def _run_ray(todo: Sequence[Job], address: str, bar: tqdm, results: dict[int, FileResult]) -> int:
    """The files as Ray tasks of one CPU each on the cluster at `address` (module docstring),
    their results into `results`; returns the cluster's CPUs."""
    import ray

    ray.init(address=address, logging_level="WARNING", log_to_driver=False)
    cpus = int(ray.cluster_resources().get("CPU", 0))

    @ray.remote(num_cpus=0)
    class Progress:
        """Frames done per report, and the stop flag, between the tasks and this process."""

        def __init__(self) -> None:
            self.frames, self.stop = 0, False

        def report(self, index: int, frames: int) -> bool:
            self.frames += frames
            return self.stop

        def take(self) -> int:
            frames, self.frames = self.frames, 0
            return frames

        def request_stop(self) -> None:
            self.stop = True

    @ray.remote(num_cpus=1, max_retries=0)
    def mask_task(job: Job, progress: Any) -> FileResult:
        return _run_job(job, lambda index, frames: ray.get(progress.report.remote(index, frames)))

    def absolute(job: Job) -> Job:  # a task's working directory is Ray's, not ours
        return dataclasses.replace(job, source=job.source.absolute(), output=job.output.absolute(),
                                   params=job.params.absolute() if job.params else None)

    def as_given(result: FileResult, job: Job) -> FileResult:
        return dataclasses.replace(result, input=str(job.source), output=str(job.output) if result.output else None,
                                   params=str(job.params) if result.params else None)

    progress = Progress.remote()  # type: ignore[attr-defined]
    refs = {mask_task.remote(absolute(job), progress): job for job in todo}
    try:
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=len(pending), timeout=_POLL_S)
            bar.update(ray.get(progress.take.remote()))
            for ref in done:
                job = refs[ref]
                try:
                    results[job.index] = as_given(ray.get(ref), job)
                except ray.exceptions.RayError as err:  # the task's node or process died
                    results[job.index] = FileResult(str(job.source), "failed", reason=f"the Ray task failed ({type(err).__name__})")
                bar.set_description(f"files {len(results)}/{len(todo)}")
        bar.update(ray.get(progress.take.remote()))
    except KeyboardInterrupt:
        ray.get(progress.request_stop.remote())
        ray.wait(list(refs), num_returns=len(refs), timeout=60)  # running files stop at their next report
        raise
    finally:
        ray.shutdown()
    return cpus


def _result_of(future: Future[FileResult], job: Job) -> FileResult:
    try:
        return future.result()
    except BrokenProcessPool:  # a worker died (out of memory, a native crash): its files fail
        return FileResult(str(job.source), "failed", reason="the worker process died")


def _drain(progress: Any, bar: tqdm) -> None:
    while True:
        try:
            _, frames = progress.get_nowait()
        except queue.Empty:
            return
        bar.update(frames)


def _sweep_partials(jobs: Iterable[Job]) -> None:
    """Delete temporary outputs a killed worker left (same naming as `outfile.AtomicFile`)."""
    for job in jobs:
        for path in (job.output, job.params):
            if path is not None:
                for tmp in path.parent.glob(f".{glob.escape(path.stem)}.*.part{path.suffix}"):
                    tmp.unlink(missing_ok=True)


def write_summary(report: BatchReport, path: Path) -> None:
    """Save the JSON summary atomically."""
    write_atomically(path, (json.dumps(report.to_json(), indent=2, allow_nan=False) + "\n").encode())


def default_workers() -> int:
    """The local cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

