"""Consultation rooms: two unguessable links, the media of one call, and its lifetime.

A room has one token per role (patient, doctor), each `secrets.token_urlsafe(32)`
(256 bits), compared in constant time. It holds at most one peer connection per role
(a reconnecting page replaces its previous one) and ends when both sides have left for
`Limits.empty_grace_s`, or when it has seen no activity for `Limits.idle_timeout_s`.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

from aiortc import RTCDataChannel, RTCPeerConnection
from aiortc.mediastreams import MediaStreamTrack

from .media import Masked, MaskEngine, MaskerFactory, default_masker
from .metrics import Metrics
from .relay import FrameRelay

log = logging.getLogger(__name__)

ROLES = ("patient", "doctor")
PARAMS_INTERVAL_S = 0.1   # live values to the doctor at about 10 Hz
STATUS_INTERVAL_S = 1.0   # the patient's status is re-sent at least this often


@dataclass(frozen=True)
class Limits:
    max_rooms: int = 16
    max_peers: int = 8             # peer connections across all rooms (each masks or relays)
    idle_timeout_s: float = 1800.0  # no frame, no signaling for this long
    empty_grace_s: float = 60.0    # both left: time to come back (page reload, network)


class LimitReached(Exception):
    """Too many rooms (HTTP 429) or peers (HTTP 503)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class Session:
    """One role's peer connection in a room, with its data channel and outgoing tracks."""

    def __init__(self, role: str, pc: RTCPeerConnection) -> None:
        self.role = role
        self.pc = pc
        self.channel: RTCDataChannel | None = None
        self.tracks: list[MediaStreamTrack] = []  # ours, stopped on close
        self.closed = False

    def send(self, message: dict[str, Any]) -> None:
        if self.channel is not None and self.channel.readyState == "open":
            self.channel.send(json.dumps(message, separators=(",", ":")))

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for track in self.tracks:
            track.stop()
        await self.pc.close()


class Room:
    """The shared state of one consultation."""

    def __init__(self, room_id: str, metrics: Metrics, masker_factory: MaskerFactory) -> None:
        self.id = room_id
        self.tokens = {role: secrets.token_urlsafe(32) for role in ROLES}
        self.engine = MaskEngine(metrics, masker_factory)
        # Audio both ways and the doctor's own camera: relayed as they are.
        self.patient_audio = FrameRelay("audio")
        self.doctor_audio = FrameRelay("audio")
        self.doctor_video = FrameRelay("video")
        self.sessions: dict[str, Session] = {}
        self.recorder: Any = None  # recording.Recorder while recording
        self.created = self.last_activity = time.monotonic()
        self.ever_joined = False
        self.closed = False
        self._last_params = 0.0
        self._last_status = 0.0
        self._last_face: bool | None = None
        self.engine.add_listener(self._on_masked)

    def role_for(self, token: str | None) -> str | None:
        """The role this token opens, or None."""
        if not token:
            return None
        for role, expected in self.tokens.items():
            if secrets.compare_digest(token.encode(), expected.encode()):
                return role
        return None

    def touch(self) -> None:
        self.last_activity = time.monotonic()

    # --- sessions --------------------------------------------------------------------
    async def join(self, session: Session) -> None:
        """Make `session` the one of its role; an earlier one (a reload) is closed."""
        previous = self.sessions.get(session.role)
        self.sessions[session.role] = session
        self.ever_joined = True
        self.touch()
        if previous is not None:
            await previous.close()
        self.announce()

    async def leave(self, session: Session) -> None:
        if self.sessions.get(session.role) is session:
            del self.sessions[session.role]
            if session.role == "patient":
                self.engine.detach()
                self.patient_audio.set_source(None)
            else:
                self.doctor_audio.set_source(None)
                self.doctor_video.set_source(None)
            self.touch()
            self.announce()
        await session.close()

    def announce(self) -> None:
        """Tell both sides who is here."""
        present = {role: role in self.sessions for role in ROLES}
        for session in self.sessions.values():
            session.send({"type": "peers", **present})

    def send(self, role: str, message: dict[str, Any]) -> None:
        session = self.sessions.get(role)
        if session is not None:
            session.send(message)

    # --- results -> data channels and recording ---------------------------------------
    def _on_masked(self, masked: Masked) -> None:
        now = time.monotonic()
        self.last_activity = now
        if masked.face_found != self._last_face or now - self._last_status >= STATUS_INTERVAL_S:
            self._last_face, self._last_status = masked.face_found, now
            self.send("patient", {"type": "status", "face": masked.face_found})
        if now - self._last_params >= PARAMS_INTERVAL_S:
            self._last_params = now
            values = None
            if masked.params is not None:
                values = {k: round(v, 3) for k, v in masked.params.items() if not k.startswith("expr_")}
            self.send("doctor", {"type": "params", "face": masked.face_found, "values": values})
        if self.recorder is not None:
            self.recorder.write_params(masked)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.recorder is not None:
            with contextlib.suppress(Exception):
                await self.recorder.stop()
            self.recorder = None
        if self.sessions:
            for session in self.sessions.values():
                session.send({"type": "ended"})  # the pages stop instead of reconnecting
            await asyncio.sleep(0.1)  # let the data channels deliver it
        for session in list(self.sessions.values()):
            await session.close()
        self.sessions.clear()
        for relay in (self.patient_audio, self.doctor_audio, self.doctor_video):
            relay.close()
        await self.engine.close()


class RoomRegistry:
    """All open rooms, their limits, and the task that ends idle ones."""

    def __init__(self, limits: Limits, metrics: Metrics, masker_factory: MaskerFactory = default_masker) -> None:
        self.limits = limits
        self.metrics = metrics
        self._masker_factory = masker_factory
        self.rooms: dict[str, Room] = {}
        self._reaper: asyncio.Task[None] | None = None

    def create(self) -> Room:
        if len(self.rooms) >= self.limits.max_rooms:
            raise LimitReached(f"at most {self.limits.max_rooms} rooms at a time", 429)
        room = Room(secrets.token_urlsafe(9), self.metrics, self._masker_factory)
        self.rooms[room.id] = room
        log.info("room %s created", room.id)
        return room

    def get(self, room_id: str) -> Room | None:
        return self.rooms.get(room_id)

    @property
    def peers(self) -> int:
        return sum(len(room.sessions) for room in self.rooms.values())

    def check_peer_capacity(self, room: Room, role: str) -> None:
        """Raise LimitReached (503) unless one more peer connection fits."""
        replacing = role in room.sessions
        if not replacing and self.peers >= self.limits.max_peers:
            raise LimitReached(f"at most {self.limits.max_peers} connections at a time", 503)

    async def close_room(self, room: Room, reason: str) -> None:
        self.rooms.pop(room.id, None)
        await room.close()
        log.info("room %s closed (%s)", room.id, reason)

    def start(self, period_s: float = 1.0) -> None:
        if self._reaper is None:
            self._reaper = asyncio.ensure_future(self._reap(period_s))

    async def _reap(self, period_s: float) -> None:
        while True:
            await asyncio.sleep(period_s)
            now = time.monotonic()
            for room in list(self.rooms.values()):
                left = room.ever_joined and not room.sessions
                limit = self.limits.empty_grace_s if left else self.limits.idle_timeout_s
                if now - room.last_activity > limit:
                    await self.close_room(room, "both left" if left else "idle")

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        for room in list(self.rooms.values()):
            await self.close_room(room, "server stopping")
