"""A patient or doctor peer in Python, speaking the relay's protocol like the pages do.

It offers the same transceivers in the same order as static/js (see
server/signaling.py), waits for all candidates (non-trickle), posts the offer, and
collects what it receives: the frames of the first transceiver's video (the masked
avatar, for both roles), a frame count per transceiver, and the JSON messages of the
"dmask" data channel.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import av
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

ROOM_HEADER = "X-Room-Token"  # the room's token: never in a URL (server/app.py)


class SignalingError(Exception):
    """The relay refused the offer; `status` and `message` say why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


@dataclass
class Received:
    video: list[tuple[float, av.VideoFrame]] = field(default_factory=list)  # first video track: (loop time, frame)
    counts: dict[int, int] = field(default_factory=dict)  # frames per transceiver, in offer order
    messages: list[dict[str, Any]] = field(default_factory=list)


class Peer:
    """One side of a consultation: `role` is "patient" or "doctor"."""

    def __init__(self, base_url: str, room_id: str, role: str, token: str,
                 video: MediaStreamTrack | None = None, audio: MediaStreamTrack | None = None,
                 keep_frames: int = 300) -> None:
        self.url = f"{base_url}/api/rooms/{room_id}/{role}"
        self.role, self.token = role, token
        self.pc = RTCPeerConnection()
        self.received = Received()
        self._keep = keep_frames
        self._tasks: list[asyncio.Task[None]] = []
        if role == "patient":
            self.pc.addTransceiver(video or "video", "sendrecv")   # camera out, masked avatar in
            self.pc.addTransceiver(audio or "audio", "sendrecv")
            self.pc.addTransceiver("video", "recvonly")            # the doctor's camera
        else:
            self.pc.addTransceiver("video", "recvonly")            # masked avatar in
            self.pc.addTransceiver(audio or "audio", "sendrecv")
            self.pc.addTransceiver(video or "video", "sendonly")   # the doctor's own camera
        self.channel = self.pc.createDataChannel("dmask")
        self.channel.on("message", lambda text: self.received.messages.append(json.loads(text)))
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        index = next(i for i, t in enumerate(self.pc.getTransceivers()) if t.receiver.track is track)
        self._tasks.append(asyncio.ensure_future(self._collect(index, track)))

    async def _collect(self, index: int, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                self.received.counts[index] = self.received.counts.get(index, 0) + 1
                if index == 0:
                    self.received.video.append((asyncio.get_running_loop().time(), frame))
                    del self.received.video[:-self._keep]

    async def post(self, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
        """POST to the room API under this role's URL; returns (status, JSON)."""
        async with aiohttp.ClientSession() as http:
            data = raw if raw is not None else json.dumps(body).encode()
            async with http.post(f"{self.url}/{path}", data=data,
                                 headers={"Content-Type": "application/json", ROOM_HEADER: self.token}) as response:
                return response.status, await response.json(content_type=None)

    async def connect(self) -> None:
        """Offer, get the answer, and start ICE/DTLS (returns before media flows)."""
        await self.pc.setLocalDescription(await self.pc.createOffer())  # gathers every candidate
        status, body = await self.post("offer", {"type": "offer", "sdp": self.pc.localDescription.sdp})
        if status != 200:
            raise SignalingError(status, body.get("error", ""))
        await self.pc.setRemoteDescription(RTCSessionDescription(body["sdp"], body["type"]))

    async def wait_connected(self, timeout: float = 10.0) -> None:
        async def connected() -> None:
            while self.pc.connectionState != "connected":
                if self.pc.connectionState in ("failed", "closed"):
                    raise ConnectionError(f"{self.role}: connection {self.pc.connectionState}")
                await asyncio.sleep(0.05)

        await asyncio.wait_for(connected(), timeout)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.pc.close()
