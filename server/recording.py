"""Recording a consultation: the masked video, optionally the audio, and the parameters.

Only what the doctor sees is recorded: a `MaskedVideoTrack` of the room's engine (never
the camera), the two audio relays when the doctor asks for audio, and the fitted
parameters (`<name>.params.jsonl`, the format of `dmask mask --params`). Files are
written under hidden temporary names and appear complete when the recording stops.

A crash must not cost the recording: the video is fragmented MP4 (a header without
samples, then one self-contained fragment at least every second, a keyframe every 30
frames), so the hidden file is playable up to its last whole fragment, and the
parameters are flushed every second. Each writer holds an advisory lock on its hidden
files; `recover()` (at the relay's and each room worker's start) gives the unlocked ones
left by a dead process their final names: the video cut after its last whole fragment,
the parameters after their last whole line.

Encoding runs on one thread of its own (H.264 `ultrafast`, AAC), not on the event loop:
aiortc's MediaRecorder encodes on the loop with libx264's default preset (~30 ms a
frame), which would stall signaling and the live call.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import fractions
import logging
import os
import re
import struct
import time
from pathlib import Path

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from dmask_rt.paramlog import ParamLog
from dmask_rt.pipeline import Masker
from dmask_rt.video.outfile import AtomicFile

from .media import Masked, MaskEngine
from .relay import FrameRelay

log = logging.getLogger(__name__)

#: What may be listed and downloaded: recordings and exams (`exam.py`).
NAME_RE = re.compile(r"^(\d{8}-\d{6}(-\d+)?\.(mp4|params\.jsonl)|exam-\d{8}-\d{6}(-\d+)?\.(json|params\.jsonl|results\.json|report\.html))$")
VIDEO_TIME_BASE = fractions.Fraction(1, 1000)
AUDIO_RATE = 48000
AUDIO_MAILBOX = 50     # 1 s of 20 ms frames: the encoder thread may lag briefly
AUDIO_RESYNC_S = 0.2   # a gap longer than this in a source is kept as a gap
FLUSH_INTERVAL_S = 1.0  # what a crash may lose of the parameters
#: Fragmented MP4: playable as written, one fragment a second or at each keyframe.
MP4_OPTIONS = {"movflags": "frag_keyframe+empty_moov+default_base_moof", "frag_duration": "1000000",
               "flush_packets": "1"}   # each fragment goes to the file as soon as it is complete
#: What a recorder leaves while writing: `.<stem>.<hex>.part.mp4`, `.<stem>.params.<hex>.part.jsonl`.
PART_RE = re.compile(r"^\.(?P<stem>\d{8}-\d{6}(-\d+)?)(?P<params>\.params)?\.[0-9a-f]{8}\.part\.(?P<ext>mp4|jsonl)$")


class _AudioClock:
    """Sample-count timestamps that stay aligned with the wall clock across gaps."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.next_pts = 0

    def pts(self, samples: int, now: float) -> int:
        wall = int((now - self.start) * AUDIO_RATE)
        if wall - self.next_pts > AUDIO_RESYNC_S * AUDIO_RATE:
            self.next_pts = wall
        pts = self.next_pts
        self.next_pts += samples
        return pts


class Recorder:
    """Records one room into `directory` until `stop()`."""

    def __init__(self, directory: Path, engine: MaskEngine, audio: list[FrameRelay]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        stem = time.strftime("%Y%m%d-%H%M%S")
        n = 0
        while (directory / f"{stem}.mp4").exists():
            n += 1
            stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{n}"
        self.video_path = directory / f"{stem}.mp4"
        self.params_path = directory / f"{stem}.params.jsonl"
        self._file = AtomicFile(self.video_path)
        self._container = av.open(str(self._file.tmp), "w", options=MP4_OPTIONS)
        self._video = self._container.add_stream(
            "libx264", rate=30, options={"preset": "ultrafast", "tune": "zerolatency", "crf": "23", "g": "30"})
        self._video.pix_fmt = "yuv420p"
        self._video.codec_context.time_base = VIDEO_TIME_BASE
        self._video_size: tuple[int, int] | None = None
        self._tracks: list[tuple[MediaStreamTrack, av.stream.Stream | None]] = [(engine.picture_track(), self._video)]
        for relay in audio:
            stream = self._container.add_stream("aac", rate=AUDIO_RATE)
            stream.layout = "stereo"
            self._tracks.append((relay.subscribe(AUDIO_MAILBOX), stream))
        self._params = ParamLog(self.params_path, Masker.PARAM_NAMES)
        self._locks = [_lock(self._file.tmp), _lock(self._params.tmp)]   # recover() leaves them alone
        self._flushed = time.monotonic()
        self._engine = engine
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dmask-record")
        self._start = time.monotonic()
        self._last_video_pts = -1
        self._frames = 0
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def names(self) -> list[str]:
        return [self.video_path.name, self.params_path.name]

    def start(self) -> None:
        self._tasks = [asyncio.ensure_future(self._run(track, stream)) for track, stream in self._tracks]

    def write_params(self, masked: Masked) -> None:
        """Log the parameters of one published frame (called on the event loop)."""
        now = time.monotonic()
        self._params.write(self._frames, now - self._start, masked.face_found, masked.params)
        self._frames += 1
        if now - self._flushed >= FLUSH_INTERVAL_S:
            self._params.flush()
            self._flushed = now

    async def _run(self, track: MediaStreamTrack, stream: av.stream.Stream) -> None:
        loop = asyncio.get_running_loop()
        clock = _AudioClock(self._start)
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE) if track.kind == "audio" else None
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                now = time.monotonic()
                if resampler is None:
                    await loop.run_in_executor(self._executor, self._encode_video, frame, now)
                elif self._video_size is not None:  # the file's header waits for the video size
                    # Resampled copies: the relayed frame is shared with the live call.
                    for out in resampler.resample(frame):
                        out.pts, out.time_base = clock.pts(out.samples, now), fractions.Fraction(1, AUDIO_RATE)
                        await loop.run_in_executor(self._executor, self._encode, stream, out)

    def _encode_video(self, frame: av.VideoFrame, now: float) -> None:
        if self._video_size is None:  # the first masked frame fixes the size (even: 4:2:0)
            self._video.width, self._video.height = frame.width // 2 * 2, frame.height // 2 * 2
            self._video_size = (self._video.width, self._video.height)
        if (frame.width, frame.height) != self._video_size:
            frame = frame.reformat(*self._video_size)
        pts = max(self._last_video_pts + 1, int((now - self._start) * 1000))
        self._last_video_pts = pts
        frame.pts, frame.time_base = pts, VIDEO_TIME_BASE
        self._encode(self._video, frame)

    def _encode(self, stream: av.stream.Stream, frame: av.frame.Frame | None) -> None:
        for packet in stream.encode(frame):
            self._container.mux(packet)

    async def stop(self) -> list[str]:
        """Finish the files; returns their names."""
        for track, _ in self._tracks:
            track.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._finish)
        self._executor.shutdown(wait=False)
        self._params.close()
        for lock in self._locks:
            os.close(lock)
        return self.names

    def _finish(self) -> None:
        try:
            if self._video_size is not None:
                for _, stream in self._tracks:
                    self._encode(stream, None)
            self._container.close()
        except Exception:
            self._file.discard()
            raise
        self._file.commit()


def _lock(path: Path) -> int:
    """An exclusive advisory lock on `path` while the returned descriptor is open (the
    kernel drops it when the process dies, however it dies)."""
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def recover(directory: Path) -> list[str]:
    """Give the hidden files a dead recorder left in `directory` their final names; the
    names recovered. Files another process is writing (locked) are left alone; a video
    without one whole fragment (it had no frame yet) or a parameter log without one whole
    line is deleted."""
    recovered = []
    for part in sorted(directory.glob(".*.part.*")) if directory.is_dir() else []:
        match = PART_RE.match(part.name)
        if match is None:
            continue
        try:
            fd = os.open(part, os.O_RDWR)
        except OSError as err:
            log.error("cannot recover %s: %s", part, err.strerror)
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue   # a live recorder's
            keep = _mp4_playable_end(fd) if match["ext"] == "mp4" else _whole_lines_end(fd)
            final = directory / f"{match['stem']}{match['params'] or ''}.{match['ext']}"
            if keep == 0:
                part.unlink()
                continue
            if final.exists():   # not left by a recorder of this name (it checks): keep both as they are
                log.error("cannot recover %s: %s exists", part, final.name)
                continue
            os.ftruncate(fd, keep)
            os.replace(part, final)
            recovered.append(final.name)
            log.info("recovered %s (%d bytes)", final, keep)
        finally:
            os.close(fd)
    return recovered


def _mp4_playable_end(fd: int) -> int:
    """The length of the fragmented MP4's playable prefix: its top-level boxes up to the
    last whole `mdat` (a `moof` without its data is cut too); 0 without a header and a
    fragment."""
    size = os.fstat(fd).st_size
    offset, end, moov = 0, 0, False
    while offset + 8 <= size:
        length, kind = struct.unpack(">I4s", os.pread(fd, 8, offset))
        if length == 1 and offset + 16 <= size:
            length = struct.unpack(">Q", os.pread(fd, 8, offset + 8))[0]
        if length < 8 or offset + length > size:
            break   # torn or garbage: the rest is unusable
        offset += length
        moov = moov or kind == b"moov"
        if kind == b"mdat" and moov:
            end = offset
    return end


def _whole_lines_end(fd: int) -> int:
    """The length of the text up to its last newline (a torn last line is dropped)."""
    size = os.fstat(fd).st_size
    data = os.pread(fd, size, 0)
    return data.rfind(b"\n") + 1
