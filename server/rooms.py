"""Consultation rooms: two unguessable links, the media of one call, and its lifetime.

A room has one token per role (patient, doctor), each `secrets.token_urlsafe(32)`
(256 bits), compared in constant time. It holds at most one peer connection per role
(a reconnecting page replaces its previous one) and ends when both sides have left for
`Limits.empty_grace_s`, or when it has seen no activity for `Limits.idle_timeout_s`.

`Room` does a room's media work in this process; `worker.WorkerRoom` has the same
interface and does it in a process of its own (`dmask serve`'s default). The registry
and the front's handlers use only that interface: answer, hang_up, set_recording,
refresh, close, and the links, roles present, activity and recording state.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aiortc import RTCConfiguration

from dmask_rt.video.outfile import OutputPathError

from . import signaling
from .exam import RoomExam
from .media import Masked, MaskEngine, MaskerFactory
from .metrics import Metrics
from .recording import Recorder
from .relay import FrameRelay
from .signaling import Session

log = logging.getLogger(__name__)

ROLES = ("patient", "doctor")
PARAMS_INTERVAL_S = 0.1   # live values to the doctor at about 10 Hz
STATUS_INTERVAL_S = 1.0   # the patient's status is re-sent at least this often
MAX_MESSAGE = 16_384      # bytes of one data-channel message from a page
CLOSEUP_SIZE = (960, 360)  # the doctor's eye close-up: both eyes, magnified


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


def new_tokens() -> dict[str, str]:
    return {role: secrets.token_urlsafe(32) for role in ROLES}


def role_for(tokens: dict[str, str], token: str | None) -> str | None:
    """The role this token opens, or None."""
    if not token:
        return None
    for role, expected in tokens.items():
        if secrets.compare_digest(token.encode(), expected.encode()):
            return role
    return None


@dataclass(frozen=True)
class MediaSettings:
    """What a room's media work needs besides its masker."""

    rtc: RTCConfiguration
    recordings: Path             # a room records into <recordings>/<room id>
    frame_reports: bool = False  # per-frame timing reports to the doctor (the latency harness)


class RoomLike(Protocol):
    """What the registry and the front's handlers use of a room (module docstring)."""

    id: str
    tokens: dict[str, str]
    last_activity: float
    ever_joined: bool

    @property
    def roles(self) -> set[str]: ...

    @property
    def recording(self) -> bool: ...

    def role_for(self, token: str | None) -> str | None: ...

    async def answer(self, role: str, sdp: str) -> str: ...

    async def hang_up(self, role: str) -> None: ...

    async def set_recording(self, action: str, audio: bool) -> tuple[bool, list[str]]: ...

    async def refresh(self) -> None: ...

    async def close(self) -> None: ...


class Room:
    """The shared state of one consultation, its media worked in this process."""

    def __init__(self, room_id: str, metrics: Metrics, masker_factory: MaskerFactory,
                 settings: MediaSettings | None = None) -> None:
        self.id = room_id
        self.tokens = new_tokens()
        self.settings = settings or MediaSettings(RTCConfiguration(), Path("recordings"))
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
        self.exam = RoomExam(self.settings.recordings / room_id, self.send)
        self.engine.add_listener(self._on_masked)

    def role_for(self, token: str | None) -> str | None:
        return role_for(self.tokens, token)

    def touch(self) -> None:
        self.last_activity = time.monotonic()

    @property
    def roles(self) -> set[str]:
        return set(self.sessions)

    @property
    def recording(self) -> bool:
        return self.recorder is not None

    # --- what the front asks (RoomLike) -------------------------------------------------
    async def answer(self, role: str, sdp: str) -> str:
        """Open `role`'s connection from its offer (signaling.answer); the answer SDP."""
        _, answer = await signaling.answer(self, role, sdp, self.settings.rtc, self.settings.frame_reports)
        return answer

    async def hang_up(self, role: str) -> None:
        session = self.sessions.get(role)
        if session is not None:
            await self.leave(session)

    async def set_recording(self, action: str, audio: bool) -> tuple[bool, list[str]]:
        """Start or stop recording; (recording now, the files written). ValueError: no such
        action; OSError: the files cannot be made."""
        if action == "start":
            if self.recorder is None:
                sources = [self.patient_audio, self.doctor_audio] if audio else []
                try:
                    self.recorder = Recorder(self.settings.recordings / self.id, self.engine, sources)
                except OutputPathError as err:
                    raise OSError(str(err)) from err
                self.recorder.start()
            names = self.recorder.names
        elif action == "stop":
            names = []
            if self.recorder is not None:
                recorder, self.recorder = self.recorder, None
                names = await recorder.stop()
        else:
            raise ValueError('expected {"action": "start" | "stop"}')
        self.send("doctor", {"type": "recording", "active": self.recorder is not None})
        return self.recorder is not None, names

    async def refresh(self) -> None:
        """Nothing to fetch: this room's state is here."""

    def state(self) -> dict[str, Any]:
        return {"sessions": sorted(self.sessions), "idle_s": time.monotonic() - self.last_activity,
                "ever_joined": self.ever_joined, "recording": self.recorder is not None}

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
                self.exam.patient_left()
            else:
                self.doctor_audio.set_source(None)
                self.doctor_video.set_source(None)
                self.engine.closeup_size = None  # rendered for the doctor only
            self.touch()
            self.announce()
        await session.close()

    def announce(self) -> None:
        """Tell both sides who is here."""
        present = {role: role in self.sessions for role in ROLES}
        for session in self.sessions.values():
            session.send({"type": "peers", **present})

    def greet(self, session: Session) -> None:
        """A page's data channel opened: tell it who is here and where the exam stands."""
        self.announce()
        if session.role == "doctor" and self.sessions.get("doctor") is session:
            self.exam.tell_doctor()

    def receive(self, session: Session, data: Any) -> None:
        """A message from a page's data channel: the exam's, and the doctor's close-up switch."""
        if self.sessions.get(session.role) is not session or not isinstance(data, str) or len(data) > MAX_MESSAGE:
            return
        try:
            message = json.loads(data)
        except (ValueError, RecursionError):  # "[[[[..." deeper than the parser recurses
            return
        if not isinstance(message, dict):
            return
        if message.get("type") == "exam":
            self.touch()
            (self.exam.doctor if session.role == "doctor" else self.exam.patient)(message)
        elif message.get("type") == "closeup" and session.role == "doctor":
            self.engine.closeup_size = CLOSEUP_SIZE if message.get("on") is True else None

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
                shown = {**masked.params, **self.exam.calibrated(masked.params)}
                values = {k: round(v, 3) for k, v in shown.items() if not k.startswith("expr_")}
            self.send("doctor", {"type": "params", "face": masked.face_found, "values": values})
        if self.recorder is not None:
            self.recorder.write_params(masked)
        self.exam.on_masked(masked)

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
        await self.exam.close()
        await self.engine.close()


class RoomRegistry:
    """All open rooms, their limits, and the task that ends idle ones."""

    def __init__(self, limits: Limits, make_room: Callable[[str], RoomLike]) -> None:
        self.limits = limits
        self._make_room = make_room
        self.rooms: dict[str, RoomLike] = {}
        self._reaper: asyncio.Task[None] | None = None

    def create(self) -> RoomLike:
        if len(self.rooms) >= self.limits.max_rooms:
            raise LimitReached(f"at most {self.limits.max_rooms} rooms at a time", 429)
        room = self._make_room(secrets.token_urlsafe(9))
        self.rooms[room.id] = room
        log.info("room %s created", room.id)
        return room

    def get(self, room_id: str) -> RoomLike | None:
        return self.rooms.get(room_id)

    @property
    def peers(self) -> int:
        return sum(len(room.roles) for room in self.rooms.values())

    def check_peer_capacity(self, room: RoomLike, role: str) -> None:
        """Raise LimitReached (503) unless one more peer connection fits."""
        replacing = role in room.roles
        if not replacing and self.peers >= self.limits.max_peers:
            raise LimitReached(f"at most {self.limits.max_peers} connections at a time", 503)

    async def close_room(self, room: RoomLike, reason: str) -> None:
        self.rooms.pop(room.id, None)
        await room.close()
        log.info("room %s closed (%s)", room.id, reason)

    def start(self, period_s: float = 1.0) -> None:
        if self._reaper is None:
            self._reaper = asyncio.ensure_future(self._reap(period_s))

    async def _reap(self, period_s: float) -> None:
        while True:
            await asyncio.sleep(period_s)
            for room in list(self.rooms.values()):
                await room.refresh()
            now = time.monotonic()
            for room in list(self.rooms.values()):
                left = room.ever_joined and not room.roles
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
