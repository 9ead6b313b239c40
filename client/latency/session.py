"""Measured consultations: rooms on a relay, each with a clip-playing patient and a timing doctor."""
from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import numpy as np

from client.peer import ROOM_HEADER, Peer
from server import jitter
from server.auth import CSRF_HEADER
from server.rooms import ROLES

from . import matching, stats
from .clip import Clip, ClipTrack
from .doctor import DoctorProbe
from .matching import FrameTiming

FIRST_FRAME_TIMEOUT_S = 180.0  # a new room loads the face models before its first avatar
TAIL_S = 1.0                   # frames captured just before the end are still on their way


class Clinician:
    """The harness signed in to a relay, as the start page is: it creates and ends rooms."""

    def __init__(self, base_url: str, http: aiohttp.ClientSession, csrf: str) -> None:
        self.base_url, self.http, self.csrf = base_url, http, csrf

    @classmethod
    async def sign_in(cls, base_url: str, login: tuple[str, str]) -> Clinician:
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))  # keeps 127.0.0.1's cookie
        async with http.post(f"{base_url}/api/login", json={"name": login[0], "password": login[1]}) as response:
            body = await response.json()
            if response.status != 200:
                await http.close()
                raise RuntimeError(f"the relay refused the harness's sign-in: {body}")
        return cls(base_url, http, body["csrf"])

    async def create_room(self) -> tuple[str, dict[str, str]]:
        """A new room: (id, role -> token)."""
        async with self.http.post(f"{self.base_url}/api/rooms", headers={CSRF_HEADER: self.csrf}) as response:
            body = await response.json()
            if response.status != 201:
                raise RuntimeError(f"the relay refused a room: {body}")
        return body["id"], {role: body[role].split("#", 1)[1] for role in ROLES}

    async def end_room(self, room: str, doctor_token: str) -> None:
        with contextlib.suppress(aiohttp.ClientError):
            async with self.http.delete(f"{self.base_url}/api/rooms/{room}",
                                        headers={CSRF_HEADER: self.csrf, ROOM_HEADER: doctor_token}):
                pass


@dataclass
class Leg:
    """One connection of the patient: its camera, and where its frames begin among the
    doctor's reports and arrivals (each connection has its own pts constants)."""

    camera: ClipTrack
    patient: Peer
    reports_from: int = 0
    arrivals_from: int = 0
    hops: tuple[int, int] | None = None


class Consultation:
    """One room: the patient plays the clip, the doctor times what arrives. The patient
    may leave and join again (`rejoin`): each connection is a `Leg`."""

    def __init__(self, clinician: Clinician, room: str, tokens: dict[str, str], clip: Clip, keep_images: int = 0) -> None:
        self.clinician, self.room, self.tokens, self.clip = clinician, room, tokens, clip
        self.doctor = DoctorProbe(clinician.base_url, room, tokens["doctor"], keep_images)
        self.legs = [self._leg()]

    def _leg(self) -> Leg:
        camera = ClipTrack(self.clip)
        patient = Peer(self.clinician.base_url, self.room, "patient", self.tokens["patient"], video=camera, keep_frames=1)
        return Leg(camera, patient, len(self.doctor.reports), len(self.doctor.arrivals))

    @property
    def patient(self) -> Peer:
        return self.legs[-1].patient

    @property
    def camera(self) -> ClipTrack:
        return self.legs[-1].camera

    @property
    def frames_sent(self) -> int:
        """Camera frames delivered so far, all legs (cheap: for progress lines)."""
        return sum(len(leg.camera.sent.frames) for leg in self.legs)

    def sent(self) -> list[tuple[int, int, float]]:
        """Every camera frame delivered, all legs."""
        return [frame for leg in self.legs for frame in leg.camera.sent.frames]

    def timings(self, recent: int | None = None) -> list[FrameTiming]:
        """The camera frames matched so far to their arrival at the doctor.

        `recent`: only among the last leg's last `recent` frames (cheap, for the progress
        line: it runs on the event loop that also times the frames).
        """
        legs = self.legs[-1:] if recent is not None else self.legs
        ends = [(leg.reports_from, leg.arrivals_from) for leg in self.legs[1:]] + [(len(self.doctor.reports), len(self.doctor.arrivals))]
        ends = ends[-len(legs):]
        out: list[FrameTiming] = []
        for leg, (reports_to, arrivals_to) in zip(legs, ends):
            sent = leg.camera.sent.frames
            reports = self.doctor.reports[leg.reports_from:reports_to]
            arrivals = self.doctor.arrivals[leg.arrivals_from:arrivals_to]
            if leg.hops is None:
                leg.hops = matching.offsets(sent, reports, arrivals)
            if recent is not None:
                sent, reports, arrivals = sent[-recent:], reports[-recent:], arrivals[-recent:]
            out += matching.match(sent, reports, arrivals, leg.hops)
        return out

    def window(self, begin: float, end: float) -> dict[str, Any]:
        return stats.window(self.timings(), self.sent(), self.doctor.arrivals, begin, end)

    async def rejoin(self, away_s: float) -> float:
        """The patient leaves, comes back after `away_s` with a new connection (as a reload
        does) to the same room; returns the seconds from its new connect to its first avatar."""
        await self._leave()
        await asyncio.sleep(away_s)
        leg = self._leg()
        self.legs.append(leg)
        started = time.monotonic()
        await leg.patient.connect()
        await leg.patient.wait_connected(30)
        while not any(r.get("input_pts") is not None for r in self.doctor.reports[leg.reports_from:]):
            if time.monotonic() - started > FIRST_FRAME_TIMEOUT_S:
                raise TimeoutError(f"room {self.room}: no avatar {FIRST_FRAME_TIMEOUT_S:.0f} s after the patient rejoined")
            await asyncio.sleep(0.02)
        return time.monotonic() - started

    async def _leave(self) -> None:
        self.camera.stop()
        await self.patient.close()

    async def close(self) -> None:
        await self.clinician.end_room(self.room, self.tokens["doctor"])
        await self._leave()
        await self.doctor.close()


async def _open(clinician: Clinician, clip: Clip, keep_images: int) -> Consultation:
    room, tokens = await clinician.create_room()
    consultation = Consultation(clinician, room, tokens, clip, keep_images)
    for peer in (consultation.patient, consultation.doctor):
        await peer.connect()
    for peer in (consultation.patient, consultation.doctor):
        await peer.wait_connected(30)
    return consultation


@contextlib.asynccontextmanager
async def consultations(base_url: str, login: tuple[str, str], clip: Clip, count: int,
                        keep_images: int = 0) -> AsyncIterator[list[Consultation]]:
    """`count` concurrent consultations on the relay, each already showing the avatar, made
    by the clinician `login` (name, password)."""
    jitter.install()  # the peers, too, release a frame once complete, as browsers do
    opened: list[Consultation] = []
    clinician = await Clinician.sign_in(base_url, login)
    try:
        for _ in range(count):
            opened.append(await _open(clinician, clip, keep_images))
        deadline = time.monotonic() + FIRST_FRAME_TIMEOUT_S
        while not all(c.doctor.reports for c in opened):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no avatar frame after {FIRST_FRAME_TIMEOUT_S:.0f} s")
            await asyncio.sleep(0.1)
        yield opened
    finally:
        for consultation in opened:
            await consultation.close()
        await clinician.http.close()


class Progress:
    """One status line on stderr, rewritten in place."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def show(self, text: str) -> None:
        if self.enabled:
            sys.stderr.write(f"\r\033[K{text}")
            sys.stderr.flush()

    def done(self, text: str) -> None:
        if self.enabled:
            self.show(text)
            sys.stderr.write("\n")


def _live_line(label: str, elapsed: float, total: float, opened: list[Consultation]) -> str:
    recent = time.monotonic() - 2.0
    latencies = [f.latency_ms for c in opened for f in c.timings(90) if f.delivered >= recent]
    sent = sum(c.frames_sent for c in opened)
    delivered = sum(len(c.doctor.reports) for c in opened)
    p50 = f"{np.median(latencies):.0f} ms" if latencies else "-"
    return f"{label}: {elapsed:5.1f}/{total:.0f} s  sessions {len(opened)}  sent {sent}  masked {delivered}  latency p50 (2 s) {p50}"


async def measure(opened: list[Consultation], warmup: float, seconds: float, label: str, progress: Progress,
                  on_second: Callable[[float], None] | None = None) -> tuple[float, float]:
    """Let the consultations run `warmup` + `seconds` (+ a tail); returns the measured (begin, end)."""
    start = time.monotonic()
    begin, end = start + warmup, start + warmup + seconds
    while (now := time.monotonic()) < end + TAIL_S:
        progress.show(_live_line(label, now - start, warmup + seconds + TAIL_S, opened))
        if on_second is not None:
            on_second(now)
        await asyncio.sleep(1.0)
    progress.done(_live_line(label, time.monotonic() - start, warmup + seconds + TAIL_S, opened))
    return begin, end
