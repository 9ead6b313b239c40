"""The `dmask` command: mask a video file, preview live, benchmark, fetch the models, serve consultations
and manage the clinicians' accounts, report a guided eye examination.

Exit codes: 0 done, 2 unusable input/output, no display or no models (one line
on stderr, nothing written), 130 interrupted. Anything else is a bug and shows a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from . import assets, preview
from .paramlog import ParamLog, check_params_path
from .video import encode
from .video.decode import VideoInputError, VideoReader, open_camera
from .video.outfile import OutputPathError, check_output_path, discard_pending, write_atomically

# The development clips live in the shared data folder beside the repository.
SHARED_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
DEFAULT_CLIP = SHARED_VIDEOS / "p02_gaze_wink.mp4"
DEFAULT_OUT_DIR = Path("out")
EXIT_UNUSABLE = 2
EXIT_INTERRUPTED = 130


def _input_path(arg: str | None) -> Path:
    """The INPUT argument, or the default clip, which must then exist."""
    if arg is not None:
        return Path(arg)
    if not DEFAULT_CLIP.is_file():
        raise VideoInputError(f"no INPUT given and the default clip {DEFAULT_CLIP} is missing")
    return DEFAULT_CLIP


def cmd_mask(args: argparse.Namespace) -> int:
    """Mask a video file into an H.264 .mp4 (and optionally a per-frame parameter log), or an archive of them."""
    from . import batch

    if batch.is_batch(args.input):
        return _mask_batch(args)
    if args.workers is not None or args.summary or args.recursive or args.cluster:
        raise VideoInputError("--workers, --cluster, --summary and --recursive are for batches "
                              "(several inputs, a folder or a glob)")
    source = _input_path(args.input[0] if args.input else None)
    output = check_output_path(args.output, encode.SUFFIXES) if args.output else None
    params_path = check_params_path(args.params) if args.params else None
    with VideoReader(source) as reader:
        if output is None:  # out/ is created only now that the input is known to be good
            DEFAULT_OUT_DIR.mkdir(exist_ok=True)
            output = check_output_path(DEFAULT_OUT_DIR / f"{source.stem}.masked.mp4", encode.SUFFIXES)
        if output.resolve() == source.resolve():
            raise OutputPathError(f"{output}: is the input; choose another output")

        from .pipeline import Masker  # heavy import: only once the job is known to be valid

        with contextlib.ExitStack() as stack:
            interrupted = stack.enter_context(_remembered_interrupt())
            masker = stack.enter_context(Masker())
            writer = stack.enter_context(encode.VideoWriter(output, reader.time_base, reader.rate))
            log = stack.enter_context(ParamLog(params_path, Masker.PARAM_NAMES)) if params_path else None
            faces, start = 0, time.perf_counter()
            progress = tqdm(reader, total=reader.frames, unit="frame", disable=args.quiet, desc=source.name)
            for found in batch.masked_frames(progress, masker, writer, log, args.side_by_side):
                if interrupted():
                    raise KeyboardInterrupt
                faces += found
            progress.total = progress.n  # container frame counts can be off by a few
            progress.close()
            elapsed = time.perf_counter() - start
    if not args.quiet:
        frames = writer.frames
        print(f"{source.name}: {frames} frames, {faces} with a face ({100 * faces / frames:.0f}%), "
              f"{frames / elapsed:.1f} fps -> {output}" + (f", {params_path}" if params_path else ""))
    return 0


def _mask_batch(args: argparse.Namespace) -> int:
    """Mask every input into -o DIR (default out/) on parallel workers; 0 if all were masked or skipped, else 2."""
    from . import batch

    files, early = batch.expand_inputs(args.input, args.recursive)
    if args.params is not None and args.params not in batch.PARAM_FORMATS:
        raise OutputPathError(f"--params {args.params}: in a batch it names the format, {' or '.join(batch.PARAM_FORMATS)}")
    summary_path = check_output_path(args.summary, (".json",)) if args.summary else None
    out_dir = Path(args.output) if args.output else DEFAULT_OUT_DIR
    if (out_dir.exists() and not out_dir.is_dir()) or out_dir.suffix.lower() in encode.SUFFIXES:
        raise OutputPathError(f"{out_dir}: not a directory (with several inputs -o names the output directory)")
    for name in assets.MODELS:  # checked once here rather than failing every file in the workers
        assets.model_path(name)
    try:
        out_dir.mkdir(exist_ok=True)
    except OSError as err:
        raise OutputPathError(f"{out_dir}: cannot create the output directory ({err.strerror})") from None
    jobs, clashes = batch.plan(files, out_dir, args.params, args.side_by_side)
    report = batch.run(jobs, workers=args.workers or batch.default_workers(), quiet=args.quiet, early=[*early, *clashes],
                       cluster=args.cluster)
    if summary_path is not None:
        batch.write_summary(report, summary_path)
    if not args.quiet:
        print(report.summary())
    elif not report.ok:  # quiet, but a failure still says why
        print("\n".join(r.line() for r in report.files if r.status == "failed"), file=sys.stderr)
    if report.interrupted:
        raise KeyboardInterrupt
    return 0 if report.ok else EXIT_UNUSABLE


def cmd_measure(args: argparse.Namespace) -> int:
    """Ocular measurements of a video: a summary on stdout, per-frame values (CSV) and a plot (PNG)."""
    source = _input_path(args.input)
    csv_path = check_params_path(args.csv) if args.csv else None
    plot_path = check_output_path(args.plot, (".png",)) if args.plot else None
    json_path = check_output_path(args.json, (".json",)) if args.json else None
    with VideoReader(source) as reader:
        if csv_path is None or plot_path is None:  # defaults only once the input is known to be good
            DEFAULT_OUT_DIR.mkdir(exist_ok=True)
            csv_path = csv_path or check_params_path(DEFAULT_OUT_DIR / f"{source.stem}.measures.csv")
            plot_path = plot_path or check_output_path(DEFAULT_OUT_DIR / f"{source.stem}.measures.png", (".png",))

        from .measure import MeasureSeries, format_summary
        from .measure.plot import plot_series
        from .measure.series import COLUMNS
        from .pipeline import Masker

        with Masker() as masker, ParamLog(csv_path, COLUMNS) as log:
            series = MeasureSeries(masker.face)
            for frame in tqdm(reader, total=reader.frames, unit="frame", disable=args.quiet, desc=source.name):
                values = masker.process(frame.rgb).params
                series.add_values(frame.time, values)
                log.write(frame.index, frame.time, values is not None,
                          None if values is None else {name: values[name] for name in COLUMNS})
        summary = series.summary()
    write_atomically(plot_path, plot_series(series, source.name))
    if json_path is not None:
        write_atomically(json_path, (json.dumps(summary, indent=2, allow_nan=False) + "\n").encode())
    print(format_summary(summary))
    if not args.quiet:
        print(f"-> {csv_path}, {plot_path}" + (f", {json_path}" if json_path else ""), file=sys.stderr)
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    """Show original | avatar in a window until the video ends or Esc/q."""
    screenshot = check_output_path(args.screenshot, (".png",)) if args.screenshot else None
    reader = open_camera(args.camera) if args.camera else VideoReader(_input_path(args.input))
    with reader:
        preview.run(reader, max_frames=args.frames, screenshot=screenshot, realtime=not args.camera)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Per-stage latency over the development clips, as JSON (stdout and --json) and a table (stderr)."""
    from . import bench

    json_path = check_output_path(args.json, (".json",)) if args.json else None
    clips = sorted(SHARED_VIDEOS.glob("p0[1-8]_*.mp4"))
    if not clips:
        raise VideoInputError(f"{SHARED_VIDEOS}: no development clips p01..p08")
    if args.closeup:
        report = bench.run_closeup(clips, frames=args.frames)
        bench.print_closeup_table(report)
    else:
        report = bench.run(clips, frames=args.frames)
        bench.print_table(report)
    bench.write_json(report, json_path)
    return 0


def cmd_setup(args: argparse.Namespace) -> int:
    """Fetch the model files and compile the fit (once per install)."""
    from .fit.fitter import warm_up
    from .model.generic_face import GenericFace

    print(f"models in {assets.fetch()}")
    warm_up(GenericFace.load())
    print("fit compiled")
    return 0


DEFAULT_EVAL_CLIPS = ("p01_gaze_left_right.mp4", "p02_gaze_wink.mp4", "p04_eye_closure_look_down.mp4", "p09_webcam.mp4",
                      "p09_face_then_cartoon.mov", "p09_cartoon_then_face_vfr.mov")
SHARED_REID = SHARED_VIDEOS.parent / "reid"


def cmd_eval(args: argparse.Namespace) -> int:
    """Clinical fidelity and privacy of the mask beside crop, blur and pixelation: report.json, report.html and a table."""
    from .evaluate import report, runner  # heavy imports (dlib, matplotlib): only for this command

    videos = [Path(v) for v in args.videos] or [SHARED_VIDEOS / name for name in DEFAULT_EVAL_CLIPS]
    galleries = [Path(g) for g in args.gallery] or [SHARED_REID / "johns", SHARED_REID / "face_recognition"]
    try:
        evaluation = runner.evaluate(videos, galleries, step=args.step,
                                     masked=[Path(m) for m in args.masked] if args.masked else None)
    except runner.EvaluationInputError as err:
        print(f"dmask: error: {err}", file=sys.stderr)
        return EXIT_UNUSABLE
    json_path, html_path = report.write(evaluation, Path(args.out))
    print(report.headline(evaluation.results))
    print(f"\n-> {json_path}, {html_path}")
    return 0


def cmd_exam(args: argparse.Namespace) -> int:
    """Figures of a guided eye examination from its record and param log: an HTML report and the results as JSON."""
    from .exam.analysis import analyse  # heavy imports (matplotlib): only for this command
    from .exam.record import RecordError, read_record
    from .exam.report import report_html
    from .paramlog import ParamLogError, read_params

    record_path = Path(args.record)
    try:
        record = read_record(record_path)
        if args.params is None and not isinstance(record.get("params_file"), str):
            raise RecordError(f"{record_path}: no 'params_file' in the record; give --params")
        params_path = Path(args.params) if args.params else record_path.parent / record["params_file"]
        stem = record_path.stem
        html_path = check_output_path(args.html or record_path.with_name(f"{stem}.report.html"), (".html",))
        json_path = check_output_path(args.json or record_path.with_name(f"{stem}.results.json"), (".json",))
        rows = read_params(params_path)
    except (RecordError, ParamLogError) as err:
        print(f"dmask: error: {err}", file=sys.stderr)
        return EXIT_UNUSABLE
    except OSError as err:  # missing or unreadable file
        print(f"dmask: error: {err.filename}: {err.strerror}", file=sys.stderr)
        return EXIT_UNUSABLE
    results = analyse(record, rows)
    page = report_html(results, record)
    write_atomically(json_path, (json.dumps(results, indent=1, allow_nan=False) + "\n").encode())
    write_atomically(html_path, page.encode())
    print(f"-> {html_path}, {json_path}", file=sys.stderr)
    return 0


@contextlib.contextmanager
def _remembered_interrupt() -> Iterator[Callable[[], bool]]:
    """Ctrl-C raises KeyboardInterrupt as usual and is also remembered: one that lands in
    Numba's compiler is swallowed by llvmlite's ctypes callbacks, and the frame loop, which
    asks the returned function, then stops at the next frame."""
    seen = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        seen.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield seen.is_set
    finally:
        signal.signal(signal.SIGINT, previous)


def cmd_serve(args: argparse.Namespace) -> int:
    """Live consultations: the patient's browser camera reaches the doctor's browser only as the masked avatar."""
    from server.app import ServeConfig, serve  # heavy import (aiortc): only for this command
    from server.ice import PageIce, rtc_configuration
    from server.rooms import Limits

    try:
        rtc_configuration(args.ice_server, args.turn_username, args.turn_password)
        stun = [url for url in args.ice_server if url.split(":", 1)[0].lower() in ("stun", "stuns")]
        page_ice = PageIce(stun, args.turn_url, args.turn_secret, args.turn_ttl, args.relay_only)
        config = ServeConfig(
            host=args.host, port=args.port, https=args.https, hostnames=args.hostname,
            ice_servers=args.ice_server, turn_username=args.turn_username, turn_password=args.turn_password,
            page_ice=page_ice, room_workers=not args.single_process, cluster=args.cluster,
            recordings=Path(args.recordings), data=Path(args.data),
            limits=Limits(max_rooms=args.max_rooms, max_peers=args.max_peers, idle_timeout_s=args.idle_timeout),
        )
        serve(config)
    except (ValueError, OSError) as err:  # a bad ICE URL, a port in use
        print(f"dmask: error: {err}", file=sys.stderr)
        return EXIT_UNUSABLE
    return 0


def _read_password(from_stdin: bool) -> str:
    """One line of stdin, or typed twice at the terminal (not echoed)."""
    import getpass

    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise ValueError("no terminal to type the password on: give it on stdin with --password-stdin")
    password = getpass.getpass("Password: ")
    if getpass.getpass("Same password again: ") != password:
        raise ValueError("the two passwords differ")
    return password


def cmd_users(args: argparse.Namespace) -> int:
    """Clinicians' accounts of `dmask serve` (in --data): only they create, end and record consultations."""
    import datetime

    from server.accounts import AccountError, Accounts, check_name, check_password

    try:
        accounts = Accounts.open(Path(args.data))
        if args.action == "list":
            now = time.time()
            for user in accounts.users():
                created = datetime.datetime.fromtimestamp(user.created).strftime("%Y-%m-%d %H:%M")
                locked = f"  locked for {(user.locked_until - now) / 60:.0f} min" if user.locked_until > now else ""
                print(f"{user.name}  created {created}{locked}")
        elif args.action == "add":
            if args.name in {user.name for user in accounts.users()}:
                raise AccountError(f"an account named {check_name(args.name)!r} exists already")
            check_name(args.name)
            accounts.add(args.name, check_password(_read_password(args.password_stdin)))
            print(f"dmask: account {args.name!r} added", file=sys.stderr)
        elif args.action == "remove":
            accounts.remove(args.name)
            print(f"dmask: account {args.name!r} removed, its sessions ended", file=sys.stderr)
        else:
            accounts.unlock(args.name)
            print(f"dmask: account {args.name!r} unlocked", file=sys.stderr)
    except (AccountError, ValueError, OSError, EOFError) as err:
        print(f"dmask: error: {err or 'no password given'}", file=sys.stderr)
        return EXIT_UNUSABLE
    return 0


def cmd_latency(args: argparse.Namespace) -> int:
    """What the mask costs: latency with the mask off and on, sessions per machine, drift (aiortc peers, no browser)."""
    import asyncio

    from client.latency import report, runner  # heavy import (aiortc): only for this command

    clip = _input_path_or(args.clip, SHARED_VIDEOS / "p09_webcam.mp4")
    options = runner.Options(clip=clip, seconds=args.seconds, sweep=args.sweep, max_sessions=args.max_sessions,
                             soak_minutes=args.soak, soak_sessions=args.soak_sessions, rejoin_every_s=args.rejoin_every,
                             progress=not args.quiet)
    result = asyncio.run(runner.run(options))
    written = report.write(result, Path(args.out))
    print(report.summary(result))
    print("-> " + ", ".join(str(p) for p in written), file=sys.stderr)
    return 0


def _input_path_or(arg: str | None, default: Path) -> Path:
    """The given video, or `default`; either must be a file."""
    path = Path(arg) if arg is not None else default
    if not path.is_file():
        raise VideoInputError(f"{path}: no such video file")
    return path


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `dmask` and its subcommands."""
    parser = argparse.ArgumentParser(prog="dmask", description="Digital mask: a generic 3D face that keeps head pose, eyelids, gaze and blinks, and drops identity.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    mask_cmd = commands.add_parser("mask", help="mask a video file, or many", description=cmd_mask.__doc__)
    mask_cmd.add_argument("input", nargs="*", metavar="INPUT",
                          help=f"video file (default: {DEFAULT_CLIP}); several files, a folder or a quoted glob make a batch")
    mask_cmd.add_argument("-o", "--output", metavar="OUTPUT",
                          help="output .mp4/.mov (default: out/<input stem>.masked.mp4); for a batch the output directory (default: out/)")
    mask_cmd.add_argument("--params", metavar="FILE", help="per-frame parameters, .jsonl or .csv; for a batch the format, jsonl or csv (<stem>.params.<format> beside each output)")
    mask_cmd.add_argument("--workers", type=_positive_int, metavar="N", help="batch: files masked at once, one process each (default: the cores)")
    mask_cmd.add_argument("--cluster", metavar="ADDRESS",
                          help="batch: mask the files as tasks on this Ray cluster (pip extra 'cluster'; "
                               "inputs and output directory on storage every node shares)")
    mask_cmd.add_argument("--summary", metavar="FILE.json", help="batch: also save the per-file summary as JSON")
    mask_cmd.add_argument("--recursive", action="store_true", help="batch: also take the videos in a folder's subfolders")
    mask_cmd.add_argument("--side-by-side", action="store_true", help="write original | avatar for review (puts the input's pixels in the output)")
    mask_cmd.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    mask_cmd.set_defaults(run=cmd_mask)

    measure_cmd = commands.add_parser("measure", help="ocular measurements of a video (summary, CSV, plot)", description=cmd_measure.__doc__)
    measure_cmd.add_argument("input", nargs="?", metavar="VIDEO", help=f"video file (default: {DEFAULT_CLIP})")
    measure_cmd.add_argument("--csv", metavar="FILE", help="per-frame measures (default: out/<stem>.measures.csv)")
    measure_cmd.add_argument("--plot", metavar="PNG", help="plot of lids, openness and eye rotation (default: out/<stem>.measures.png)")
    measure_cmd.add_argument("--json", metavar="FILE", help="also save the summary as JSON")
    measure_cmd.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    measure_cmd.set_defaults(run=cmd_measure)

    preview_cmd = commands.add_parser("preview", help="live window: original | avatar", description=cmd_preview.__doc__)
    source = preview_cmd.add_mutually_exclusive_group()
    source.add_argument("input", nargs="?", metavar="INPUT", help=f"video file (default: {DEFAULT_CLIP})")
    source.add_argument("--camera", metavar="DEV", help="V4L2 camera device, e.g. /dev/video0")
    preview_cmd.add_argument("--frames", type=_positive_int, metavar="N", help="stop after N frames")
    preview_cmd.add_argument("--screenshot", metavar="PNG", help="save the last window contents (shows the original video)")
    preview_cmd.set_defaults(run=cmd_preview)

    bench_cmd = commands.add_parser("bench", help="per-stage latency over the development clips", description=cmd_bench.__doc__)
    bench_cmd.add_argument("--frames", type=_positive_int, default=150, metavar="N", help="frames per clip and size (default: 150)")
    bench_cmd.add_argument("--json", metavar="OUT", help="also save the JSON report here")
    bench_cmd.add_argument("--closeup", action="store_true", help="instead: the eye close-up's cost as a second VP8 track or in the avatar's frame")
    bench_cmd.set_defaults(run=cmd_bench)

    setup_cmd = commands.add_parser("setup", help="fetch the model files and compile the fit", description=cmd_setup.__doc__)
    setup_cmd.set_defaults(run=cmd_setup)

    eval_cmd = commands.add_parser("eval", help="measure fidelity and privacy beside crop, blur, pixelation", description=cmd_eval.__doc__)
    eval_cmd.add_argument("videos", nargs="*", metavar="VIDEO", help="videos; names starting with the same NAME_ are one person (default: dev clips p01, p02, p04 and p09's three)")
    eval_cmd.add_argument("--gallery", action="append", default=[], metavar="DIR", help="identity gallery, a folder of NAME/*.jpg (repeatable; default: the shared reid sets)")
    eval_cmd.add_argument("--masked", action="append", default=[], metavar="VIDEO", help="pre-masked output for each VIDEO, in order (repeatable; default: mask them now)")
    eval_cmd.add_argument("--out", default=str(DEFAULT_OUT_DIR / "eval"), metavar="DIR", help="report folder (default: out/eval)")
    eval_cmd.add_argument("--step", type=_positive_int, default=10, metavar="N", help="privacy probes every N frames, N >= 2 (default: 10)")
    eval_cmd.set_defaults(run=cmd_eval)

    exam_cmd = commands.add_parser("exam", help="report of a guided eye examination (HTML and JSON)", description=cmd_exam.__doc__)
    exam_cmd.add_argument("record", metavar="RECORD.json", help="the exam record the consultation saved")
    exam_cmd.add_argument("--params", metavar="PARAMS.jsonl", help="its param log (default: the record's params_file beside it)")
    exam_cmd.add_argument("--html", metavar="OUT.html", help="the report (default: <record stem>.report.html beside it)")
    exam_cmd.add_argument("--json", metavar="OUT.json", help="the results (default: <record stem>.results.json beside it)")
    exam_cmd.set_defaults(run=cmd_exam)

    serve_cmd = commands.add_parser("serve", help="live masked consultations in the browser (WebRTC relay)", description=cmd_serve.__doc__)
    serve_cmd.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve_cmd.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    serve_cmd.add_argument("--https", action="store_true", help="serve https with a self-signed certificate (needed for cameras away from localhost)")
    serve_cmd.add_argument("--hostname", action="append", default=[], metavar="NAME", help="extra name or address for the certificate (repeatable)")
    serve_cmd.add_argument("--ice-server", action="append", default=[], metavar="URL", help="stun:/turn: server (repeatable; default: none, works offline)")
    serve_cmd.add_argument("--turn-username", metavar="USER", help="the relay's username for its turn: --ice-servers")
    serve_cmd.add_argument("--turn-password", metavar="PASSWORD", help="the relay's password for its turn: --ice-servers")
    serve_cmd.add_argument("--turn-url", action="append", default=[], metavar="URL",
                           help="turn:/turns: server the pages may relay through (repeatable; with --turn-secret)")
    serve_cmd.add_argument("--turn-secret", metavar="S", default=os.environ.get("DMASK_TURN_SECRET"),
                           help="secret shared with the TURN server (coturn: use-auth-secret, static-auth-secret=S): "
                                "each page gets credentials for its room that expire (default: $DMASK_TURN_SECRET, "
                                "which keeps it out of the process list)")
    serve_cmd.add_argument("--turn-ttl", type=float, default=6 * 3600.0, metavar="S",
                           help="lifetime of the pages' TURN credentials (default: 21600; a reconnect gets new ones)")
    serve_cmd.add_argument("--cluster", metavar="ADDRESS",
                           help="a Ray cluster (ray start on each node; pip extra 'cluster'): each room's media "
                                "runs as an actor on any node")
    serve_cmd.add_argument("--single-process", action="store_true",
                           help="every room's media in the serving process (default: a worker process per room)")
    serve_cmd.add_argument("--relay-only", action="store_true",
                           help="the pages connect through the TURN server only (hides their addresses from the relay)")
    serve_cmd.add_argument("--recordings", default="recordings", metavar="DIR", help="where recordings go (default: ./recordings)")
    serve_cmd.add_argument("--data", default="dmask-data", metavar="DIR",
                           help="accounts, sessions and rooms, kept across restarts (default: ./dmask-data)")
    serve_cmd.add_argument("--max-rooms", type=_positive_int, default=16, metavar="N", help="open rooms at a time (default: 16)")
    serve_cmd.add_argument("--max-peers", type=_positive_int, default=8, metavar="N", help="connected pages at a time (default: 8)")
    serve_cmd.add_argument("--idle-timeout", type=float, default=1800.0, metavar="S", help="close a room after S idle seconds (default: 1800)")
    serve_cmd.set_defaults(run=cmd_serve)

    users_cmd = commands.add_parser("users", help="clinicians' accounts for dmask serve", description=cmd_users.__doc__)
    users_actions = users_cmd.add_subparsers(dest="action", metavar="ACTION", required=True)
    for action, text in (("add", "a new account (password from the terminal, twice)"), ("list", "the accounts"),
                         ("remove", "delete an account and end its sessions"),
                         ("unlock", "lift the lock after too many wrong passwords")):
        action_cmd = users_actions.add_parser(action, help=text, description=text)
        if action != "list":
            action_cmd.add_argument("name", metavar="NAME")
        if action == "add":
            action_cmd.add_argument("--password-stdin", action="store_true", help="read the password as one line of stdin")
        action_cmd.add_argument("--data", default="dmask-data", metavar="DIR",
                                help="dmask serve's data directory (default: ./dmask-data)")
    users_cmd.set_defaults(run=cmd_users)

    latency_cmd = commands.add_parser("latency", help="latency the mask adds, and sessions per machine (harness)", description=cmd_latency.__doc__)
    latency_cmd.add_argument("--clip", metavar="PATH", help=f"the patient's camera (default: {SHARED_VIDEOS / 'p09_webcam.mp4'})")
    latency_cmd.add_argument("--seconds", type=float, default=20.0, metavar="S", help="measured seconds per run (default: 20)")
    latency_cmd.add_argument("--sweep", action="store_true", help="capacity sweep: 1, 2, 4, ... concurrent sessions")
    latency_cmd.add_argument("--max-sessions", type=_positive_int, default=16, metavar="N", help="the sweep's maximum (default: 16)")
    latency_cmd.add_argument("--soak", type=float, metavar="MINUTES", help="also a soak for MINUTES: drift, relay memory, files, threads")
    latency_cmd.add_argument("--soak-sessions", type=_positive_int, default=4, metavar="N", help="consultations in the soak (default: 4)")
    latency_cmd.add_argument("--rejoin-every", type=float, default=120.0, metavar="S",
                             help="in the soak, each patient leaves and rejoins every S seconds (default: 120)")
    latency_cmd.add_argument("--out", default="out/latency", metavar="DIR", help="JSON and plots (default: out/latency)")
    latency_cmd.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    latency_cmd.set_defaults(run=cmd_latency)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `dmask`; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (VideoInputError, OutputPathError, preview.DisplayError, assets.ModelsMissing) as err:
        print(f"dmask: error: {err}", file=sys.stderr)
        return EXIT_UNUSABLE
    except KeyboardInterrupt:
        discard_pending()
        print("dmask: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
