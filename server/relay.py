"""Fan-out of one remote track to several consumers, each behind a bounded mailbox.

aiortc's `MediaRelay` and a receiver's track queue are unbounded: a consumer slower
than the sender makes latency grow without limit. Here the source is drained as fast as
it delivers, and every subscriber keeps at most `maxlen` frames, dropping the oldest:
1 for video (the latest frame wins), a few for audio (a short hiccup is bridged, a
stalled consumer loses audio instead of accumulating delay).

The source can be swapped at any time (a peer reconnects, the doctor turns the camera
on): subscribers keep their track and simply receive the new source's frames.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.frame import Frame

log = logging.getLogger(__name__)


class RelayTrack(MediaStreamTrack):
    """A subscriber's view of a `FrameRelay`: frames from whatever the source is now."""

    def __init__(self, relay: "FrameRelay", maxlen: int) -> None:
        super().__init__()
        self.kind = relay.kind
        self._relay = relay
        self._frames: deque[Frame] = deque(maxlen=maxlen)
        self._ready = asyncio.Event()
        self.dropped = 0

    def _put(self, frame: Frame) -> None:
        if len(self._frames) == self._frames.maxlen:
            self.dropped += 1
        self._frames.append(frame)
        self._ready.set()

    async def recv(self) -> Frame:
        while not self._frames:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        if self.readyState != "live":
            raise MediaStreamError
        return self._frames.popleft()

    def stop(self) -> None:
        super().stop()
        self._relay._unsubscribe(self)
        self._ready.set()  # wake a pending recv() so it ends


class FrameRelay:
    """Delivers the frames of a swappable source track to bounded subscribers."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._subscribers: set[RelayTrack] = set()
        self._pump: asyncio.Task[None] | None = None
        self.frames = 0  # frames received from sources, all time

    @property
    def has_source(self) -> bool:
        return self._pump is not None and not self._pump.done()

    def subscribe(self, maxlen: int) -> RelayTrack:
        track = RelayTrack(self, maxlen)
        self._subscribers.add(track)
        return track

    def set_source(self, track: MediaStreamTrack | None) -> None:
        """Start relaying `track` (None: no source); the previous source is let go."""
        if self._pump is not None:
            self._pump.cancel()
            self._pump = None
        if track is not None:
            if track.kind != self.kind:
                raise ValueError(f"a {self.kind} relay cannot take a {track.kind} track")
            self._pump = asyncio.ensure_future(self._run(track))

    async def _run(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                self.frames += 1
                for subscriber in tuple(self._subscribers):
                    subscriber._put(frame)

    def _unsubscribe(self, track: RelayTrack) -> None:
        self._subscribers.discard(track)

    def close(self) -> None:
        self.set_source(None)
        for subscriber in tuple(self._subscribers):
            subscriber.stop()
