"""Consultation rooms: two unguessable links, the media of one call, and its lifetime.

A room has one token per role (patient, doctor), each `secrets.token_urlsafe(32)`
(256 bits), shown once in its links; the room keeps only their SHA-256 digests, and a
presented token's digest is compared in constant time. It holds at most one peer
connection per role (a reconnecting page replaces its previous one) and ends when both
sides have left for `Limits.empty_grace_s`, or when it has seen no activity for
`Limits.idle_timeout_s`. With a `store.RoomStore` the registry keeps its rooms across
restarts: a restarted relay registers them again (`RoomRegistry.restore`).

`Room` does a room's media work in this process; `worker.WorkerRoom` has the same
interface and does it in a process of its own (`dmask serve`'s default). The registry
and the front's handlers use only that interface: answer, hang_up, set_recording,
resume_recording, refresh, close, and the token digests, roles present, activity and
recording state.
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
from .store import RoomStore, token_digest

log = logging.getLogger(__name__)

ROLES = ("patient", "doctor")
PARAMS_INTERVAL_S = 0.1   # live values to the doctor at about 10 Hz
STATUS_INTERVAL_S = 1.0   # the patient's status is re-sent at least this often
MAX_MESSAGE = 16_384      # bytes of one data-channel message from a page
CLOSEUP_SIZE = (960, 360)  # the doctor's eye close-up: both eyes, magnified
PERSIST_INTERVAL_S = 5.0  # a room's activity reaches the store at most this often


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


def role_for(digests: dict[str, str], token: str | None) -> str | None:
    """The role whose token digest (`store.token_digest`) this token has, or None."""
    if not token:
        return None
    presented = token_digest(token)
    for role, expected in digests.items():
        if secrets.compare_digest(presented, expected):
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
    digests: dict[str, str]   # role -> its token's digest
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

    def resume_recording(self, audio: bool) -> None: ...

    async def refresh(self) -> None: ...

    async def close(self, ended: bool = True) -> None: ...


class Room:
    """The shared state of one consultation, its media worked in this process."""

    def __init__(self, room_id: str, metrics: Metrics, masker_factory: MaskerFactory,
                 settings: MediaSettings | None = None, digests: dict[str, str] | None = None) -> None:
        """`digests`: the links' token digests (none for a worker's room: its front checks the links)."""
        self.id = room_id
        self.digests = digests or {}
        self.settings = settings or MediaSettings(RTCConfiguration(), Path("recordings"))
        self.engine = MaskEngine(metrics, masker_factory)
        # Audio both ways and the doctor's own camera: relayed as they are.
        self.patient_audio = FrameRelay("audio")
        self.doctor_audio = FrameRelay("audio")
        self.doctor_video = FrameRelay("video")
        self.sessions: dict[str, Session] = {}
        self.recorder: Any = None  # recording.Recorder while recording
        self.resumed = False       # the recording was resumed after a restart
        self._resume_audio: bool | None = None   # resume_recording() waiting for the patient's video
        self.created = self.last_activity = time.monotonic()
        self.ever_joined = False
        self.closed = False
        self._last_params = 0.0
        self._last_status = 0.0
        self._last_face: bool | None = None
        self.exam = RoomExam(self.settings.recordings / room_id, self.send)
        self.engine.add_listener(self._on_masked)

    def role_for(self, token: str | None) -> str | None:
        return role_for(self.digests, token)

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
        action; OSError: the files cannot be made. The doctor's word replaces a pending resume."""
        if action not in ("start", "stop"):
            raise ValueError('expected {"action": "start" | "stop"}')
        self._resume_audio = None
        if action == "start":
            if self.recorder is None:
                self._start_recorder(audio)
            names = self.recorder.names
        else:
            names = []
            if self.recorder is not None:
                recorder, self.recorder = self.recorder, None
                names = await recorder.stop()
        self.resumed = False
        self.tell_recording()
        return self.recorder is not None, names

    def resume_recording(self, audio: bool) -> None:
        """Record again, in a new file, from the patient's next masked frame: the room was
        recording when the relay (or this room's worker) stopped."""
        if self.recorder is None:
            self._resume_audio = audio

    def _start_recorder(self, audio: bool) -> None:
        sources = [self.patient_audio, self.doctor_audio] if audio else []
        try:
            self.recorder = Recorder(self.settings.recordings / self.id, self.engine, sources)
        except OutputPathError as err:
            raise OSError(str(err)) from err
        self.recorder.start()

    def tell_recording(self) -> None:
        """The doctor's page: recording or not (a pending resume counts: it is the doctor's
        choice), and whether it was resumed after a restart."""
        active = self.recorder is not None or self._resume_audio is not None
        self.send("doctor", {"type": "recording", "active": active, "resumed": self.resumed})

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
            self.tell_recording()

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
        if self._resume_audio is not None:
            audio, self._resume_audio = self._resume_audio, None
            try:
                self._start_recorder(audio)
            except OSError as err:
                log.error("room %s: cannot resume recording: %s", self.id, err)
            else:
                log.info("room %s: recording resumed", self.id)
                self.resumed = True
            self.tell_recording()
        if self.recorder is not None:
            self.recorder.write_params(masked)
        self.exam.on_masked(masked)

    async def close(self, ended: bool = True) -> None:
        """End the room's media. `ended`: the consultation is over and the pages are told so
        (they stop); else the relay is stopping and they keep trying to reconnect."""
        if self.closed:
            return
        self.closed = True
        if self.recorder is not None:
            with contextlib.suppress(Exception):
                await self.recorder.stop()
            self.recorder = None
        if self.sessions and ended:
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


#: Makes a room: (id, its token digests, restored) -> the room. `restored`: made again
#: from the store after a restart (a worker room then starts its worker at the first offer).
RoomFactory = Callable[[str, dict[str, str], bool], RoomLike]


class RoomRegistry:
    """All open rooms, their limits, the task that ends idle ones, and (with a store) their
    persistence: created, activity at most every `PERSIST_INTERVAL_S`, recording, closed."""

    def __init__(self, limits: Limits, make_room: RoomFactory, store: RoomStore | None = None) -> None:
        self.limits = limits
        self._make_room = make_room
        self._store = store
        self.rooms: dict[str, RoomLike] = {}
        self._persisted: dict[str, tuple[float, bool]] = {}   # room -> (last_activity, ever_joined) stored
        self._reaper: asyncio.Task[None] | None = None

    def create(self) -> tuple[RoomLike, dict[str, str]]:
        """A new room and its tokens (role -> token), which are not kept: show them once."""
        if len(self.rooms) >= self.limits.max_rooms:
            raise LimitReached(f"at most {self.limits.max_rooms} rooms at a time", 429)
        tokens = new_tokens()
        digests = {role: token_digest(token) for role, token in tokens.items()}
        room = self._make_room(secrets.token_urlsafe(9), digests, False)
        self.rooms[room.id] = room
        if self._store is not None:
            self._store.add(room.id, digests, time.time())
            self._persisted[room.id] = (room.last_activity, room.ever_joined)
        log.info("room %s created", room.id)
        return room, tokens

    def restore(self) -> None:
        """Register again every open room of the store (after a restart); those idle past
        `Limits.idle_timeout_s` are closed instead. The restart counts as activity: the
        pages could not come back while the relay was down. A room that was recording
        records again, in a new file, once the patient's video is back."""
        if self._store is None:
            return
        for stored in self._store.load_open(self.limits.idle_timeout_s, time.time()):
            room = self._make_room(stored.id, stored.digests, True)
            room.ever_joined = stored.ever_joined
            if stored.recording:
                room.resume_recording(stored.recording_audio)
            self.rooms[room.id] = room
            self._persisted[room.id] = (room.last_activity, room.ever_joined)
            log.info("room %s restored%s", room.id, " (recording)" if stored.recording else "")

    def recorded(self, room: RoomLike, active: bool, audio: bool) -> None:
        """The doctor started or stopped recording: kept, so that a restart resumes it."""
        if self._store is not None:
            self._store.set_recording(room.id, active, audio)

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

    async def close_room(self, room: RoomLike, reason: str, ended: bool = True) -> None:
        """Close `room`; `ended` False (the relay stopping) keeps it in the store, to be
        restored at the next start with its pages still trying to reconnect."""
        self.rooms.pop(room.id, None)
        self._persisted.pop(room.id, None)
        if self._store is not None:
            if ended:
                self._store.close(room.id, time.time())
            else:
                self._persist(room, force=True)
        await room.close(ended)
        log.info("room %s closed (%s)", room.id, reason)

    def _persist(self, room: RoomLike, force: bool = False) -> None:
        """Store the room's activity if it moved by `PERSIST_INTERVAL_S` (or it was joined)."""
        assert self._store is not None
        activity, joined = self._persisted.get(room.id, (float("-inf"), False))
        if force or room.ever_joined != joined or room.last_activity - activity >= PERSIST_INTERVAL_S:
            wall = time.time() - (time.monotonic() - room.last_activity)
            self._store.touch(room.id, wall, room.ever_joined)
            self._persisted[room.id] = (room.last_activity, room.ever_joined)

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
                elif self._store is not None:
                    self._persist(room)

    async def close(self) -> None:
        """The relay is stopping: close every room's media, keeping them in the store."""
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        for room in list(self.rooms.values()):
            await self.close_room(room, "server stopping", ended=self._store is None)
