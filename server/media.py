"""The masking engine of a room and the masked video tracks its consumers receive.

Patient camera (remote track) -> `MaskEngine` -> `MaskedVideoTrack` (the avatar's
pictures, paced) -> `encoding.SharedEncoder` (VP8, once per picture) -> one
`EncodedVideoTrack` per WebRTC consumer (the patient's own preview, each doctor). The
doctor's eye close-up, a second view of the same parameters rendered only while the
doctor shows it, goes the same way with its own encoder; a recording takes a
`MaskedVideoTrack` of its own and encodes it itself.

- Latest frame wins: the engine drains the camera track as fast as frames arrive into a
  one-slot mailbox; the worker always takes the newest frame and the ones it had no
  time for are counted as dropped. Latency stays flat on a slow CPU, the frame rate
  drops instead.
- Off the event loop: `Masker.process` runs on one dedicated thread per room (the
  Masker's OpenGL context belongs to the thread that created it).
- Fail closed: consumers only ever get what the engine published, which is the
  Masker's output (the avatar, or its placeholder) or a placeholder the engine makes
  itself; camera pixels have no other way out of this module.
- `MaskedVideoTrack.recv()` (and `EncodedVideoTrack.recv()`) never raises (except
  `MediaStreamError` once stopped, which is how aiortc ends a sender): an exception in a
  track's recv() silently freezes aiortc's sender for good.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fractions
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from dmask_rt.render.placeholder import placeholder_frame

from .encoding import EncodedVideoTrack, SharedEncoder
from .metrics import FREEZE_S, Metrics

if TYPE_CHECKING:
    from dmask_rt.pipeline import FrameResult

log = logging.getLogger(__name__)

VIDEO_TIME_BASE = fractions.Fraction(1, 90000)
#: A consumer gets at most MAX_FPS frames a second: above the 30 fps that browsers' cameras
#: send, so such a camera's frames never wait for a slot. (At a cap of exactly 30 they beat
#: against the pacing and each waited up to one interval: 23 ms p50 in the relay, not 9.)
MAX_FPS = 36.0
KEEPALIVE_S = 0.5  # a consumer repeats the last picture at least this often
STALE_S = 1.0      # no camera frame for this long: consumers show "waiting"
DEFAULT_SIZE = (640, 480)
CLOSEUP_POLL_S = 0.2  # a switched-off close-up track looks this often whether it is wanted
WAITING_MESSAGE = "Waiting for the patient's camera"
#: A camera frame beyond 1080p (by its pixel count or its longer side) is scaled down to fit
#: before it is masked: a hostile patient's 8K (or VP8's 16383x16383) frames would otherwise
#: be masked, and the avatar encoded for every consumer, at that size (~1.4 s and ~1 GB of
#: libvpx per 8K frame). Browser cameras send 1080p at most: theirs are left as they are.
MAX_CAMERA_PIXELS = 1920 * 1080
MAX_CAMERA_SIDE = 1920


@dataclass(frozen=True)
class Masked:
    """One published result: what every consumer may show."""

    seq: int
    image: np.ndarray                # (h, w, 3) uint8 RGB: avatar or placeholder
    face_found: bool
    params: dict[str, float] | None
    timings_ms: dict[str, float] = field(default_factory=dict)
    received: float = 0.0            # time.monotonic() when its camera frame arrived
    input_pts: int | None = None     # its camera frame's pts (90 kHz, as received)
    closeup: np.ndarray | None = None  # the eyes magnified (pipeline.Masker.closeup_size), when asked for


class MaskerLike(Protocol):
    """The part of `dmask_rt.pipeline.Masker` the engine uses (tests substitute it)."""

    closeup_size: tuple[int, int] | None

    def process(self, rgb: np.ndarray) -> FrameResult: ...

    def close(self) -> None: ...


MaskerFactory = Callable[[], MaskerLike]


def default_masker() -> MaskerLike:
    from dmask_rt.pipeline import Masker  # heavy: models, numba, OpenGL

    return Masker()


class MaskEngine:
    """Masks the latest camera frame of one patient, on its own thread."""

    def __init__(self, metrics: Metrics, masker_factory: MaskerFactory = default_masker) -> None:
        self._metrics = metrics
        self._factory = masker_factory
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dmask-mask")
        self._masker: MaskerLike | None = None
        self._source_task: asyncio.Task[None] | None = None
        self._worker_task: asyncio.Task[None] | None = None
        self._mailbox: tuple[av.VideoFrame, float] | None = None
        self._mailbox_ready = asyncio.Event()
        self._published = asyncio.Condition()
        self._listeners: list[Callable[[Masked], None]] = []
        self._seq = 0
        self.latest: Masked | None = None
        self.last_frame_at = 0.0
        self.source_since: float | None = None  # the attached camera's first frame
        self.failures = 0
        self.closed = False
        #: (width, height) of the eye close-up to render with each frame; None: none (no cost).
        self.closeup_size: tuple[int, int] | None = None
        self.avatar_encoder = SharedEncoder(lambda: MaskedVideoTrack(self), metrics)
        self.closeup_encoder = SharedEncoder(lambda: CloseupVideoTrack(self), metrics, CloseupVideoTrack.stage_prefix)

    def preload(self) -> None:
        """Load the Masker (models, GL context) on the engine's thread now, before a camera comes."""
        self._executor.submit(self._ensure_masker)

    # --- input -----------------------------------------------------------------------
    def attach(self, track: MediaStreamTrack) -> None:
        """Mask frames of `track` from now on (a reconnecting patient brings a new one)."""
        self.detach()
        self.source_since = None
        self._source_task = asyncio.ensure_future(self._drain(track))
        if self._worker_task is None:
            self.preload()  # while ICE connects, if not done before
            self._worker_task = asyncio.ensure_future(self._work())

    def detach(self) -> None:
        if self._source_task is not None:
            self._source_task.cancel()
            self._source_task = None
        self._mailbox = None

    async def _drain(self, track: MediaStreamTrack) -> None:
        # Keeps the receiver's unbounded queue empty: every frame lands in the one slot.
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                now = time.monotonic()
                self.last_frame_at = now
                if self.source_since is None:
                    self.source_since = now
                self._metrics.frame_in()
                if self._mailbox is not None:
                    self._metrics.dropped()
                self._mailbox = (frame, now)
                self._mailbox_ready.set()

    # --- work ------------------------------------------------------------------------
    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.closed:
            await self._mailbox_ready.wait()
            self._mailbox_ready.clear()
            if self._mailbox is None:
                continue
            frame, received = self._mailbox
            self._mailbox = None
            try:
                masked = await loop.run_in_executor(self._executor, self._mask, frame, received)
            except Exception:  # noqa: BLE001 - a bad frame must not end the call
                self.failures += 1
                if self.failures % 100 == 1:  # the first of a series, not 30 a second
                    log.exception("masking failed (%d times); sending the placeholder", self.failures)
                masked = self._placeholder(*bounded_size(frame.width, frame.height), received)
            await self._publish(replace(masked, input_pts=frame.pts))

    def _mask(self, frame: av.VideoFrame, received: float) -> Masked:
        """Worker thread: camera frame -> avatar; the camera pixels end here."""
        masker = self._ensure_masker()
        masker.closeup_size = self.closeup_size
        t0 = time.perf_counter()
        width, height = bounded_size(frame.width, frame.height)
        rgb = frame.to_ndarray(format="rgb24", width=width, height=height)
        convert_ms = (time.perf_counter() - t0) * 1e3
        result = masker.process(rgb)
        timings = {"convert": convert_ms, **result.timings_ms}
        for stage, ms in timings.items():
            self._metrics.stage(stage, ms)
        if not result.face_found:
            self._metrics.no_face()
        return Masked(0, result.image, result.face_found, result.params, timings, received, closeup=result.closeup)

    def _ensure_masker(self) -> MaskerLike:
        if self._masker is None:
            self._masker = self._factory()
        return self._masker

    def _placeholder(self, width: int, height: int, received: float) -> Masked:
        self._metrics.no_face()
        return Masked(0, placeholder_frame(width, height), False, None, {}, received)

    async def _publish(self, masked: Masked) -> None:
        self._seq += 1
        masked = replace(masked, seq=self._seq)
        self.latest = masked
        for listener in tuple(self._listeners):
            try:
                listener(masked)
            except Exception:  # noqa: BLE001 - a listener must not stop the video
                log.exception("a result listener failed")
        async with self._published:
            self._published.notify_all()

    # --- output ----------------------------------------------------------------------
    def add_listener(self, listener: Callable[[Masked], None]) -> None:
        """Call `listener(masked)` on the event loop for every published result."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[Masked], None]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def track(self) -> EncodedVideoTrack:
        """A new track of the avatar, VP8-encoded, for one WebRTC sender (`EncodedVideoTrack.bind` it)."""
        return self.avatar_encoder.consumer()

    def closeup_track(self) -> EncodedVideoTrack:
        """A new track of the eye close-up, VP8-encoded (frames only while `closeup_size` is set)."""
        return self.closeup_encoder.consumer()

    def picture_track(self) -> "MaskedVideoTrack":
        """A new track of the avatar's pictures (frames), for a consumer that encodes them itself."""
        return MaskedVideoTrack(self)

    @property
    def live(self) -> bool:
        """Camera frames are arriving."""
        return self._source_task is not None and time.monotonic() - self.last_frame_at < STALE_S

    async def wait_newer(self, seq: int, timeout: float) -> Masked | None:
        """The first result newer than `seq`, or None after `timeout` seconds."""
        async def newer() -> Masked:
            async with self._published:
                await self._published.wait_for(lambda: self.latest is not None and self.latest.seq > seq)
                assert self.latest is not None
                return self.latest

        try:
            return await asyncio.wait_for(newer(), timeout)
        except asyncio.TimeoutError:
            return None

    async def close(self) -> None:
        """Stop masking and release the Masker on its own thread."""
        if self.closed:
            return
        self.closed = True
        self.detach()
        self.avatar_encoder.close()
        self.closeup_encoder.close()
        if self._worker_task is not None:
            self._worker_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker_task
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._release)
        self._executor.shutdown(wait=False)
        async with self._published:
            self._published.notify_all()

    def _release(self) -> None:
        if self._masker is not None:
            self._masker.close()
            self._masker = None


def bounded_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) scaled down, aspect kept, to within MAX_CAMERA_PIXELS and MAX_CAMERA_SIDE."""
    scale = min(1.0, math.sqrt(MAX_CAMERA_PIXELS / (width * height)), MAX_CAMERA_SIDE / max(width, height))
    if scale == 1.0:
        return width, height
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


class MaskedVideoTrack(MediaStreamTrack):
    """The avatar's pictures as a video track: the engine's newest result, paced to `MAX_FPS`.

    recv() returns as soon as a newer result exists (no added latency), repeats the last
    picture every `KEEPALIVE_S` while nothing new comes, and shows a "waiting"
    placeholder while the camera is away. Timestamps follow the wall clock in a 90 kHz
    time base, strictly increasing. Its consumer encodes what recv() returns: a
    `SharedEncoder` (which also measures the encode) or a recording.
    """

    kind = "video"
    #: Prefix of this track's per-stage metrics; the avatar's tracks also count frames out.
    stage_prefix = ""

    def __init__(self, engine: MaskEngine) -> None:
        super().__init__()
        self._engine = engine
        self._metrics = engine._metrics
        self._seq = 0
        self._start: float | None = None
        self._last_pts = -1
        self._last_return = 0.0
        self._size = DEFAULT_SIZE
        self._fresh: Masked | None = None  # the new result the next frame carries, if any
        self._fresh_at = 0.0                # when the last one was taken
        self.face_found = False
        # Opt-in per-frame reports (times and ids, never pixels), for every new result sent:
        # how the latency harness matches each frame its doctor receives to the camera frame
        # it came from. "sent" is when the picture went to its encoder.
        self.on_frame: Callable[[dict[str, Any]], None] | None = None

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live" or self._engine.closed:
            raise MediaStreamError
        try:
            image = await self._next_image()
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        except Exception:  # noqa: BLE001 - see the module docstring
            log.exception("masked track: sending the placeholder")
            frame = av.VideoFrame.from_ndarray(placeholder_frame(*self._size), format="rgb24")
        frame.pts, frame.time_base = self._next_pts(), VIDEO_TIME_BASE
        if not self.stage_prefix:
            self._metrics.frame_out()
        self._last_return = time.monotonic()
        if self.on_frame is not None and self._fresh is not None:
            self._report(frame.pts)
        return frame

    def _report(self, pts: int) -> None:
        masked, self._fresh = self._fresh, None
        assert masked is not None and self.on_frame is not None
        try:
            self.on_frame({
                "pts": pts, "input_pts": masked.input_pts, "seq": masked.seq,
                "received": masked.received, "sent": self._last_return,
                "timings_ms": {k: round(v, 3) for k, v in masked.timings_ms.items()},
            })
        except Exception:  # noqa: BLE001 - a report must not stop the video
            log.exception("masked track: frame report failed")

    def pacing_wait(self, now: float) -> float:
        """Seconds until the next frame may go: never faster than MAX_FPS, whatever the camera does."""
        return max(0.0, self._last_return + 1.0 / MAX_FPS - now)

    def _picture(self, masked: Masked) -> np.ndarray:
        """What this track shows of a published result."""
        return masked.image

    async def _next_image(self) -> np.ndarray:
        wait = self.pacing_wait(time.monotonic())
        if wait > 0:
            await asyncio.sleep(wait)
        masked = await self._engine.wait_newer(self._seq, KEEPALIVE_S)
        if masked is None:
            masked = self._engine.latest
        picture = None if masked is None else self._picture(masked)
        if picture is not None:
            self._size = (picture.shape[1], picture.shape[0])
        self._fresh = None
        if masked is None or not self._engine.live:
            return placeholder_frame(*self._size, WAITING_MESSAGE)
        if masked.seq != self._seq:
            # In the relay: camera frame received -> its avatar handed to this encoder.
            now = time.monotonic()
            self._metrics.stage(self.stage_prefix + "relay_latency", (now - masked.received) * 1e3)
            self._count_freeze(now)
            self._fresh, self._fresh_at = masked, now
        self._seq = masked.seq
        self.face_found = masked.face_found
        assert picture is not None
        return picture

    def _count_freeze(self, now: float) -> None:
        """A gap of over FREEZE_S between new avatar frames while one camera kept sending
        (not a patient away and back) is a freeze the doctor saw."""
        since = self._engine.source_since
        if (not self.stage_prefix and self._fresh_at and now - self._fresh_at > FREEZE_S
                and since is not None and since <= self._fresh_at):
            self._metrics.freeze()

    def _next_pts(self) -> int:
        now = time.monotonic()
        if self._start is None:
            self._start = now
        pts = max(self._last_pts + 1, int((now - self._start) * VIDEO_TIME_BASE.denominator))
        self._last_pts = pts
        return pts


class CloseupVideoTrack(MaskedVideoTrack):
    """The eye close-up as a video track: like the avatar's, but only while the engine renders
    it (`MaskEngine.closeup_size`). Switched off, recv() waits and nothing is encoded; a
    frame without a face, or masked before the switch, shows the placeholder at its size."""

    stage_prefix = "closeup_"

    async def _next_image(self) -> np.ndarray:
        while self._engine.closeup_size is None and not self._engine.closed:
            await asyncio.sleep(CLOSEUP_POLL_S)
        self._size = self._engine.closeup_size or self._size
        return await super()._next_image()

    def _picture(self, masked: Masked) -> np.ndarray:
        if masked.closeup is not None:
            return masked.closeup
        return placeholder_frame(*(self._engine.closeup_size or self._size))
