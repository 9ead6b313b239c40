"""Video input: any file ffmpeg decodes (through PyAV) or a V4L2 camera, as RGB frames.

Everything that makes an input unusable is found when the reader is opened,
before any processing starts, and reported as a one-line `VideoInputError`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import av.error
import numpy as np

# Beyond 8K UHD in either orientation is taken as a broken or hostile file:
# one RGB frame of it is already 100 MB.
MAX_LONG_SIDE = 7680
MAX_SHORT_SIDE = 4320
# Assumed only when a stream gives no rate (e.g. raw elementary streams).
FALLBACK_RATE = Fraction(30)


class VideoInputError(Exception):
    """An input that cannot be used as video; the message is one line for the user."""


@dataclass(frozen=True)
class Frame:
    """One decoded frame.

    `pts` counts `VideoReader.time_base` units and strictly increases, so it can
    be handed to the encoder as is; `time` is the same instant in seconds.
    """

    index: int
    rgb: np.ndarray  # (h, w, 3) uint8, upright (display rotation applied)
    pts: int
    time: float


def _ffmpeg_reason(err: av.error.FFmpegError) -> str:
    # str(err) repeats the errno and the path; the strerror alone reads as a reason.
    return (err.strerror or str(err)).strip().lower()


def check_size(width: int, height: int) -> None:
    """Raise VideoInputError for a frame size of zero or beyond 8K (7680x4320, either orientation)."""
    if width <= 0 or height <= 0:
        raise VideoInputError(f"zero frame size {width}x{height}")
    if max(width, height) > MAX_LONG_SIDE or min(width, height) > MAX_SHORT_SIDE:
        raise VideoInputError(f"frame size {width}x{height} is beyond 8K ({MAX_LONG_SIDE}x{MAX_SHORT_SIDE})")


class VideoReader:
    """Streams frames from a video file or a capture device, validated on open.

    Iterate it once; it holds only the frame being decoded (flat memory).
    `width`/`height` are those of the first frame, after display rotation;
    `frames` is the container's frame count when it gives one, else None.
    `live` (cameras) decodes without frame threads, which would hold frames back.
    """

    def __init__(self, source: str | os.PathLike[str], *, format: str | None = None, options: dict[str, str] | None = None,
                 live: bool = False) -> None:
        self.source = str(source)
        self._live = live
        if format is None:
            _check_file(Path(source))
        try:
            self._container = av.open(self.source, format=format, options=options or {})
        except av.error.FFmpegError as err:
            raise VideoInputError(f"{self.source}: not a video ffmpeg can read ({_ffmpeg_reason(err)})") from None
        try:
            self._first: Frame | None = self._open_stream()
        except BaseException:
            self._container.close()
            raise

    def _open_stream(self) -> Frame:
        """Pick the first video stream, check its size and decode its first frame."""
        if not self._container.streams.video:
            raise VideoInputError(f"{self.source}: no video stream")
        stream = self._container.streams.video[0]
        # Frame + slice threads decode H.264/HEVC files 2-3x faster, but frame threads
        # delay each frame by a few frames: a camera gets slice threads only.
        stream.thread_type = "SLICE" if self._live else "AUTO"
        if stream.width or stream.height:  # 0x0 means "not in the header": the first frame tells
            self._check_size(stream.width, stream.height)
        self.time_base: Fraction = stream.time_base or 1 / FALLBACK_RATE
        self.rate: Fraction | None = stream.average_rate or stream.guessed_rate
        self.frames: int | None = stream.frames or None
        self._step = max(1, round(1 / ((self.rate or FALLBACK_RATE) * self.time_base)))
        self._last_pts: int | None = None
        self._decoded = self._decode(stream)
        try:
            first = next(self._decoded)
        except StopIteration:
            raise VideoInputError(f"{self.source}: the video has no frames") from None
        self.height, self.width = first.rgb.shape[:2]
        return first

    def _check_size(self, width: int, height: int) -> None:
        try:
            check_size(width, height)
        except VideoInputError as err:
            raise VideoInputError(f"{self.source}: {err}") from None

    def _decode(self, stream: av.video.stream.VideoStream) -> Iterator[Frame]:
        index = 0
        try:
            for frame in self._container.decode(stream):
                self._check_size(frame.width, frame.height)
                pts = self._next_pts(frame.pts)
                yield Frame(index, _upright_rgb(frame), pts, float(pts * self.time_base))
                index += 1
        except av.error.FFmpegError as err:
            where = "the first frame" if index == 0 else f"frame {index}"
            raise VideoInputError(f"{self.source}: cannot decode {where} ({_ffmpeg_reason(err)})") from None

    def _next_pts(self, pts: int | None) -> int:
        # Downstream (muxer, logs) needs strictly increasing time: a missing timestamp
        # (raw streams) becomes one nominal frame step after the last, a repeated or
        # backward one (broken muxers) one tick after it.
        if self._last_pts is not None and (pts is None or pts <= self._last_pts):
            pts = self._last_pts + (self._step if pts is None else 1)
        self._last_pts = pts if pts is not None else 0
        return self._last_pts

    def __iter__(self) -> Iterator[Frame]:
        if self._first is None:
            raise RuntimeError("a VideoReader can be iterated only once")
        first, self._first = self._first, None  # not kept: memory stays at one frame
        yield first
        yield from self._decoded

    def close(self) -> None:
        """Release the container (also done by the context manager)."""
        self._decoded.close()
        self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _check_file(path: Path) -> None:
    """Fail early, with the plain reason, for paths that cannot be a readable file."""
    if not path.exists():
        raise VideoInputError(f"{path}: no such file")
    if path.is_dir():
        raise VideoInputError(f"{path}: is a directory, not a video file")
    if not os.access(path, os.R_OK):
        raise VideoInputError(f"{path}: permission denied")
    if path.stat().st_size == 0:
        raise VideoInputError(f"{path}: empty file")


def _upright_rgb(frame: av.VideoFrame) -> np.ndarray:
    """RGB pixels as a viewer shows them: phone videos store a display rotation
    (counter-clockwise degrees) that players apply, and face detection needs upright faces."""
    rgb = frame.to_ndarray(format="rgb24")
    quarter_turns = round(frame.rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, quarter_turns)) if quarter_turns else rgb


def open_camera(device: str = "/dev/video0") -> VideoReader:
    """A V4L2 capture device (webcam) as a VideoReader; frames come at the camera's pace."""
    if not Path(device).exists():
        raise VideoInputError(f"{device}: no such camera device")
    return VideoReader(device, format="v4l2", live=True)
