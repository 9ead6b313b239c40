"""The doctor's side of a measured consultation: when each frame arrives, and the relay's reports."""
from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from client.peer import Peer


class DoctorProbe(Peer):
    """A doctor peer that records (receipt time, pts) of every avatar frame.

    `arrivals` use `time.monotonic()` right after the decoded frame is handed over:
    the moment a page could show it. `keep_images` keeps the first frames' pixels by
    pts (tests check the matching with them).
    """

    def __init__(self, base_url: str, room_id: str, token: str, keep_images: int = 0) -> None:
        super().__init__(base_url, room_id, "doctor", token, keep_frames=0)
        self.arrivals: list[tuple[float, int]] = []
        self.reports: list[dict[str, Any]] = []
        self.images: dict[int, np.ndarray] = {}
        self._keep_images = keep_images
        self.channel.remove_all_listeners("message")  # reports come 30 times a second
        self.channel.on("message", self._on_message)

    def _on_message(self, text: str) -> None:
        message = json.loads(text)
        if message.get("type") == "frame":
            self.reports.append(message)
        else:
            self.received.messages.append(message)

    def _on_track(self, track: MediaStreamTrack) -> None:
        avatar = self.pc.getTransceivers()[0].receiver.track is track
        self._tasks.append(asyncio.ensure_future(self._time_frames(track) if avatar else self._drain(track)))

    async def _time_frames(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                self.arrivals.append((time.monotonic(), frame.pts))
                if len(self.images) < self._keep_images:
                    self.images[frame.pts] = frame.to_ndarray(format="rgb24")

    @staticmethod
    async def _drain(track: MediaStreamTrack) -> None:
        # aiortc queues received frames without bound: someone has to take them.
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
