"""The patient's camera: a real clip played at its frame rate, each frame stamped.

The clip is decoded once, fitted into 640x480 (black bars keep the face's proportions)
and kept as yuv420p arrays shared by every session. It plays forwards then backwards,
so the face never jumps when it loops. Like a camera, the track delivers frame k at
`start + k / fps` whether or not the sender asked in time: a late sender gets the
newest frame and the ones in between are skipped.
"""
from __future__ import annotations

import asyncio
import fractions
import time
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

SIZE = (640, 480)
PTS_CLOCK = 90000
TIME_BASE = fractions.Fraction(1, PTS_CLOCK)
_TAGS = np.random.default_rng(4).random(1 << 16)  # fixed, so runs are reproducible


@dataclass(frozen=True)
class Clip:
    """Decoded frames (yuv420p, (h * 3 / 2, w) uint8) and the clip's frame rate."""

    path: Path
    fps: float
    frames: list[np.ndarray]

    def yuv(self, k: int) -> np.ndarray:
        """Frame k of the endless forwards-backwards playback."""
        n = len(self.frames)
        period = max(1, 2 * n - 2)
        i = k % period
        return self.frames[i if i < n else period - i]

    def rgb(self, k: int) -> np.ndarray:
        return av.VideoFrame.from_ndarray(self.yuv(k), format="yuv420p").to_ndarray(format="rgb24")


def load_clip(path: Path, size: tuple[int, int] = SIZE, max_frames: int = 900) -> Clip:
    """Decode up to `max_frames` of `path`, each fitted into `size`."""
    width, height = size
    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 30)
        for frame in container.decode(stream):
            rgb = frame.to_ndarray(format="rgb24")
            scale = min(width / rgb.shape[1], height / rgb.shape[0])
            w, h = round(rgb.shape[1] * scale) // 2 * 2, round(rgb.shape[0] * scale) // 2 * 2
            canvas = np.zeros((height, width, 3), np.uint8)
            y, x = (height - h) // 2, (width - w) // 2
            canvas[y:y + h, x:x + w] = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
            frames.append(av.VideoFrame.from_ndarray(canvas, format="rgb24").reformat(format="yuv420p").to_ndarray())
            if len(frames) >= max_frames:
                break
    if not frames:
        raise ValueError(f"{path}: no video frames")
    return Clip(path, fps, frames)


def tagged_pts(k: int, fps: float) -> int:
    """Frame k's pts: its time at 90 kHz plus a tag under a third of a frame interval."""
    interval = PTS_CLOCK / fps
    return round(k * interval) + int(_TAGS[k % len(_TAGS)] * interval / 3)


@dataclass
class Sent:
    """What the camera delivered: (index, pts, capture time) per frame, and frames skipped."""

    frames: list[tuple[int, int, float]] = field(default_factory=list)
    skipped: int = 0


class ClipTrack(MediaStreamTrack):
    """A clip as a live camera track, stamping each frame it delivers."""

    kind = "video"

    def __init__(self, clip: Clip) -> None:
        super().__init__()
        self.clip = clip
        self.sent = Sent()
        self._start: float | None = None
        self._next = 0

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        k = self._next
        due = self._start + k / self.clip.fps
        if due > now:
            await asyncio.sleep(due - now)
        else:
            newest = int((now - self._start) * self.clip.fps)
            self.sent.skipped += newest - k
            k = newest
        frame = av.VideoFrame.from_ndarray(self.clip.yuv(k), format="yuv420p")
        frame.pts, frame.time_base = tagged_pts(k, self.clip.fps), TIME_BASE
        # Capture time: when a camera would have taken it (a late sender's wait counts).
        self.sent.frames.append((k, frame.pts, self._start + k / self.clip.fps))
        self._next = k + 1
        return frame
