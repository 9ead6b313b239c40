"""`dmask serve` without a browser: the room API, signaling errors and limits, and the
media path with aiortc peers (client/peer.py) playing real clips.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import av
import numpy as np
import pytest
from aiohttp import web
import aiortc.rtcrtpreceiver
from aiortc import AudioStreamTrack, RTCPeerConnection, VideoStreamTrack
from aiortc.contrib.media import MediaPlayer
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtp import RtpPacket

from client.peer import Peer, SignalingError
from conftest import DATA, assert_refused, run_dmask, video_frames
from dmask_rt.pipeline import FrameResult
from dmask_rt.render.palette import BACKGROUND_RGB
from dmask_rt.render.placeholder import placeholder_frame
from server import ice, jitter, tls
from server.app import RELAY, ROOM_HEADER, Relay, ServeConfig, create_app
from server.auth import CSRF_HEADER
from server.media import MAX_FPS, MaskedVideoTrack, MaskEngine, MaskerFactory, default_masker
from server.metrics import ErrorCount, Metrics
from server.relay import FrameRelay, RelayTrack
from server.rooms import Limits
from server.signaling import munge_answer

WEBCAM = DATA / "videos" / "p09_webcam.mp4"        # 640x360, a face throughout
CARTOON = DATA / "videos" / "no_face_cartoon.mp4"  # 960x540, no human face


CLINICIAN = ("dr-test", "a long enough test password")


class Server:
    """Requests to a relay as a browser makes them: a cookie jar, and once signed in
    (`sign_in`) the session's CSRF token; `token`: the room token, in its header."""

    def __init__(self, base: str, relay: Relay) -> None:
        self.base, self.relay = base, relay
        self.jar = aiohttp.CookieJar(unsafe=True)  # keeps 127.0.0.1's cookies
        self.csrf = ""

    async def request(self, method: str, path: str, token: str | None = None, signed_in: bool = True,
                      headers: dict[str, str] | None = None, **kwargs: object) -> tuple[int, object]:
        """(status, JSON or text); `signed_in=False`: without cookies or CSRF token."""
        headers = dict(headers or {})
        if token is not None:
            headers[ROOM_HEADER] = token
        if signed_in and self.csrf:
            headers.setdefault(CSRF_HEADER, self.csrf)
        jar = self.jar if signed_in else aiohttp.DummyCookieJar()
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            async with http.request(method, self.base + path, headers=headers, **kwargs) as response:
                ctype = response.headers.get("Content-Type", "")
                body = await response.json() if "json" in ctype else await response.text()
                return response.status, body

    async def sign_in(self, name: str = CLINICIAN[0], password: str = CLINICIAN[1]) -> None:
        """Sign in as `name` (an account made first if there is none of that name)."""
        accounts = self.relay.auth.accounts
        if name not in {user.name for user in accounts.users()}:
            accounts.add(name, password)
        status, body = await self.request("POST", "/api/login", json={"name": name, "password": password})
        assert status == 200, body
        self.csrf = body["csrf"]

    async def room(self) -> tuple[str, dict[str, str]]:
        """A new room, made by a signed-in clinician: (id, role -> token)."""
        if not self.csrf:
            await self.sign_in()
        status, body = await self.request("POST", "/api/rooms")
        assert status == 201, body
        return body["id"], {role: body[role].split("#")[1] for role in ("patient", "doctor")}


@contextlib.asynccontextmanager
async def relay_server(tmp_path: Path, masker_factory: MaskerFactory = default_masker, room_workers: bool = False,
                       config: ServeConfig | None = None, **limits: float) -> AsyncIterator[Server]:
    config = config or ServeConfig(recordings=tmp_path / "recordings", data=tmp_path / "data", limits=Limits(**limits),
                                   room_workers=room_workers)
    app = create_app(config, masker_factory)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield Server(f"http://127.0.0.1:{port}", app[RELAY])
    finally:
        await runner.cleanup()


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


# --- rooms, pages, errors -------------------------------------------------------------

def test_room_has_two_links_with_distinct_unguessable_tokens(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with relay_server(tmp_path) as server:
            await server.sign_in()
            status, body = await server.request("POST", "/api/rooms")
            assert status == 201
            patient, doctor = body["patient"], body["doctor"]
            # The token after '#': browsers never send it, so it is in no request line or Referer.
            assert patient.startswith(f"{server.base}/room/{body['id']}/patient#")
            assert doctor.startswith(f"{server.base}/room/{body['id']}/doctor#")
            tokens = [link.split("#")[1] for link in (patient, doctor)]
            assert tokens[0] != tokens[1] and all(len(t) >= 43 for t in tokens)  # 256 bits in base64url
            _, other = await server.room()
            assert not set(other.values()) & set(tokens)

            status, html = await server.request("GET", patient[len(server.base):].split("#")[0], signed_in=False)
            assert status == 200 and "<video" in html  # static: the page's API calls carry the token
            status, _ = await server.request("GET", f"/api/rooms/{body['id']}/doctor/ice", token=tokens[0])
            assert status == 403  # the patient's token does not open the doctor's side
            status, _ = await server.request("GET", f"/api/rooms/{body['id']}/doctor/ice")
            assert status == 403
            status, _ = await server.request("GET", f"/room/{body['id']}/patient?token={tokens[0]}")
            assert status == 403  # an old-style link
            status, _ = await server.request("GET", "/room/nosuchroom/patient")
            assert status == 404
            status, _ = await server.request("GET", "/")
            assert status == 200
            status, _ = await server.request("GET", "/", signed_in=False, allow_redirects=False)
            assert status == 302

    run(scenario())


def test_signaling_errors_are_json_with_the_right_status(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with relay_server(tmp_path) as server:
            room, tokens = await server.room()
            pc = RTCPeerConnection()
            pc.addTransceiver("video", "sendrecv")
            await pc.setLocalDescription(await pc.createOffer())
            offer = {"type": "offer", "sdp": pc.localDescription.sdp}
            audio_only = RTCPeerConnection()
            audio_only.addTransceiver("audio", "sendrecv")
            await audio_only.setLocalDescription(await audio_only.createOffer())

            cases = [
                ("/api/rooms/nosuchroom/patient/offer", tokens["patient"], json.dumps(offer), 404),
                (f"/api/rooms/{room}/patient/offer", None, json.dumps(offer), 403),
                (f"/api/rooms/{room}/patient/offer", "guess", json.dumps(offer), 403),
                (f"/api/rooms/{room}/patient/offer?token={tokens['patient']}", None, json.dumps(offer), 403),  # old links
                (f"/api/rooms/{room}/doctor/offer", tokens["patient"], json.dumps(offer), 403),
                (f"/api/rooms/{room}/patient/offer", tokens["patient"], "{not json", 400),
                (f"/api/rooms/{room}/patient/offer", tokens["patient"], "[1, 2]", 400),
                (f"/api/rooms/{room}/patient/offer", tokens["patient"], json.dumps({"type": "answer", "sdp": "v=0"}), 400),
                (f"/api/rooms/{room}/patient/offer", tokens["patient"], json.dumps({"type": "offer", "sdp": "hello"}), 400),
                (f"/api/rooms/{room}/patient/offer", tokens["patient"], json.dumps({"type": "offer", "sdp": "v=0\r\nm=bogus"}), 400),
                (f"/api/rooms/{room}/patient/offer", tokens["patient"],
                 json.dumps({"type": "offer", "sdp": audio_only.localDescription.sdp}), 400),
                (f"/api/rooms/{room}/patient/offer", tokens["patient"],
                 json.dumps({"type": "offer", "sdp": "v=0\r\n" + "a=x\r\n" * 20000}), 400),  # 100 KB
            ]
            for path, token, data, expected in cases:
                status, body = await server.request("POST", path, token=token, data=data,
                                                    headers={"Content-Type": "application/json"})
                assert status == expected, (path, data[:40], status, body)
                assert isinstance(body, dict) and body["error"], body
            assert server.relay.rooms.peers == 0
            await pc.close()
            await audio_only.close()

    run(scenario())


def test_limits_on_rooms_429_and_peers_503(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with relay_server(tmp_path, max_rooms=1, max_peers=1) as server:
            room, tokens = await server.room()
            status, body = await server.request("POST", "/api/rooms")
            assert status == 429 and body["error"]
            patient = Peer(server.base, room, "patient", tokens["patient"])
            doctor = Peer(server.base, room, "doctor", tokens["doctor"])
            await patient.connect()
            with pytest.raises(SignalingError) as refused:
                await doctor.connect()
            assert refused.value.status == 503
            again = Peer(server.base, room, "patient", tokens["patient"])
            await again.connect()  # a reconnecting patient replaces its own connection
            assert server.relay.rooms.peers == 1
            for peer in (patient, doctor, again):
                await peer.close()

    run(scenario())


def test_healthz_and_metrics_parse(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with relay_server(tmp_path) as server:
            await server.room()
            status, health = await server.request("GET", "/healthz")
            assert status == 200 and health == {"status": "ok", "rooms": 1, "peers": 0}
            status, text = await server.request("GET", "/metrics")
        assert status == 200
        samples = {}
        for line in text.splitlines():
            if line.startswith("#"):
                assert re.fullmatch(r"# (HELP|TYPE) dmask_\w+ .+", line), line
                continue
            match = re.fullmatch(r'(dmask_\w+)(\{stage="\w+"\})? (\S+)', line)
            assert match, line
            samples[match.group(1) + (match.group(2) or "")] = float(match.group(3))
        for name in ("dmask_rooms", "dmask_sessions", "dmask_frames_in_total", "dmask_frames_out_total",
                     "dmask_frames_in_per_second", "dmask_frames_out_per_second", "dmask_frames_dropped_total",
                     "dmask_freezes_total", "dmask_errors_total"):
            assert name in samples, name
        assert samples["dmask_rooms"] == 1

    run(scenario())


# --- media ----------------------------------------------------------------------------

async def _call(server: Server, clip: Path, seconds: float) -> tuple[Peer, Peer, str]:
    """Patient plays `clip` (looped, real time), doctor receives; returns after `seconds` of video."""
    room, tokens = await server.room()
    player = MediaPlayer(str(clip), loop=True)
    patient = Peer(server.base, room, "patient", tokens["patient"], video=player.video, audio=player.audio)
    doctor = Peer(server.base, room, "doctor", tokens["doctor"])
    await patient.connect()
    await doctor.connect()
    await patient.wait_connected()
    await doctor.wait_connected()
    deadline = time.monotonic() + 30
    while not doctor.received.video and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    await asyncio.sleep(seconds)
    return patient, doctor, room


def _is_placeholder(frame: np.ndarray) -> bool:
    """Almost all of it the background colour (the rest: the message), after VP8."""
    near = np.abs(frame.astype(int) - np.array(BACKGROUND_RGB)).max(axis=2) < 20
    return bool(near.mean() > 0.9)


def _frames(peer: Peer) -> list[np.ndarray]:
    return [frame.to_ndarray(format="rgb24") for _, frame in peer.received.video]


def test_doctor_receives_the_avatar_never_the_camera(tmp_path: Path) -> None:
    source = list(video_frames(WEBCAM, step=2))

    async def scenario() -> None:
        async with relay_server(tmp_path) as server:
            patient, doctor, room_id = await _call(server, WEBCAM, 4.0)
            room = server.relay.rooms.get(room_id)
            # The doctor's connection sends the masked track and patient audio, nothing else.
            senders = [s.track for s in room.sessions["doctor"].pc.getSenders() if s.track is not None]
            assert sorted(type(t).__name__ for t in senders) == ["EncodedVideoTrack", "RelayTrack"]  # the engine's encoded avatar
            assert [t.kind for t in senders if isinstance(t, RelayTrack)] == ["audio"]
            received = _frames(doctor)
            own_view = _frames(patient)
            messages = list(doctor.received.messages)
            await patient.close()
            await doctor.close()
        # Before the first masked frame, the doctor sees a "waiting" placeholder.
        first = next(i for i, f in enumerate(received) if f.shape == source[0].shape)
        assert all(_is_placeholder(f) for f in received[:first])
        received = received[first:]
        assert len(received) >= 10, len(received)
        assert {f.shape for f in received} == {source[0].shape}  # the camera's size, 640x360
        assert own_view and own_view[-1].shape == source[0].shape  # the patient sees the avatar too
        background = np.array(BACKGROUND_RGB)
        for frame in received[-10:]:
            # Far from every camera frame, and the corners are the avatar's background.
            assert min(np.abs(frame.astype(int) - s).mean() for s in source) > 20
            for corner in (frame[:8, :8], frame[:8, -8:], frame[-8:, :8], frame[-8:, -8:]):
                assert np.abs(corner.reshape(-1, 3).mean(0) - background).max() < 12  # VP8 shifts flat chroma a little
        params = [m for m in messages if m["type"] == "params"]
        assert params and params[-1]["face"] and "head_yaw_deg" in params[-1]["values"]
        assert not any(k.startswith("expr_") for k in params[-1]["values"])

    run(scenario())


def test_no_face_gives_only_placeholder_frames(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with relay_server(tmp_path) as server:
            patient, doctor, _ = await _call(server, CARTOON, 3.0)
            received = _frames(doctor)
            messages = [m for m in doctor.received.messages if m["type"] == "params"]
            status = [m for m in patient.received.messages if m["type"] == "status"]
            await patient.close()
            await doctor.close()
        assert received and all(_is_placeholder(f) for f in received)
        assert received[-1].shape == (540, 960, 3)
        cartoon = next(video_frames(CARTOON))
        assert np.abs(received[-1].astype(int) - placeholder_frame(960, 540)).mean() < 15  # VP8 at its start bitrate
        assert np.abs(received[-1].astype(int) - cartoon).mean() > 30
        assert messages and not any(m["face"] for m in messages)
        assert status and not any(m["face"] for m in status)

    run(scenario())


def test_recording_holds_masked_video_and_params_for_the_doctor_only(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with relay_server(tmp_path) as server:
            patient, doctor, room = await _call(server, WEBCAM, 0.5)
            recording = f"/api/rooms/{room}/recording"
            status, body = await server.request("POST", recording, token=patient.token, json={"action": "start"})
            assert status == 403  # the patient's link cannot record, even in a clinician's browser
            status, body = await doctor.post("../recording", {"action": "start"})
            assert status == 401  # nor can the doctor's link alone: a clinician signs in
            status, body = await server.request("POST", recording, token=doctor.token, json={"action": "start", "audio": True})
            assert status == 200 and body["recording"]
            await asyncio.sleep(3)
            status, body = await server.request("POST", recording, token=doctor.token, json={"action": "stop"})
            assert status == 200 and not body["recording"]
            token = doctor.token
            status, listing = await server.request("GET", f"/api/rooms/{room}/recordings", token=token)
            assert status == 200 and sorted(f["name"].split(".", 1)[1] for f in listing) == ["mp4", "params.jsonl"]
            status, _ = await server.request("GET", f"/api/rooms/{room}/recordings", token=patient.token)
            assert status == 403
            status, _ = await server.request("GET", f"/api/rooms/{room}/recordings", token=token, signed_in=False)
            assert status == 401  # the doctor's link alone is not enough: a clinician signs in
            status, _ = await server.request("GET", f"/api/rooms/{room}/recordings/..%2F..%2Fetc%2Fpasswd", token=token)
            assert status == 404
            video = next(f for f in listing if f["name"].endswith(".mp4"))
            assert token not in video["url"]
            status, _ = await server.request("GET", video["url"])
            assert status == 403  # a download link works with the doctor's room cookie ...
            status, _ = await server.request("POST", f"/api/rooms/{room}/doctor/session", token=token)
            assert status == 200  # ... which the doctor's page makes from its token
            async with aiohttp.ClientSession(cookie_jar=server.jar) as http:
                async with http.get(server.base + video["url"]) as response:
                    assert response.status == 200
                    (tmp_path / "download.mp4").write_bytes(await response.read())
            await patient.close()
            await doctor.close()
        with av.open(str(tmp_path / "download.mp4")) as container:
            assert {s.type for s in container.streams} >= {"video", "audio"}
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert len(frames) >= 5 and frames[0].shape == (360, 640, 3)
        assert np.abs(frames[-1][:8, :8].reshape(-1, 3).mean(0) - np.array(BACKGROUND_RGB)).max() < 8
        rows = [json.loads(line) for line in next((tmp_path / "recordings").glob("*/*.params.jsonl")).read_text().splitlines()]
        assert rows and any(r["face_found"] for r in rows) and "eye_r_horizontal_deg" in rows[0]

    run(scenario())


def test_audio_both_ways_and_the_doctors_camera_reach_the_patient(tmp_path: Path) -> None:
    async def scenario() -> tuple[Peer, Peer]:
        async with relay_server(tmp_path, _FlakyMasker) as server:
            room, tokens = await server.room()
            patient = Peer(server.base, room, "patient", tokens["patient"], video=_Camera([(320, 240)]), audio=AudioStreamTrack())
            doctor = Peer(server.base, room, "doctor", tokens["doctor"], video=VideoStreamTrack(), audio=AudioStreamTrack())
            for peer in (patient, doctor):
                await peer.connect()
            for peer in (patient, doctor):
                await peer.wait_connected()
            await asyncio.sleep(2.5)
            for peer in (patient, doctor):
                await peer.close()
            return patient, doctor

    patient, doctor = run(scenario())  # type: ignore[misc]
    # Transceivers in offer order: 0 video (avatar), 1 audio, 2 video (doctor's camera).
    assert doctor.received.counts.get(1, 0) > 50     # the patient's voice (20 ms frames)
    assert patient.received.counts.get(1, 0) > 50    # the doctor's voice
    assert patient.received.counts.get(2, 0) > 10    # the doctor's camera
    assert patient.received.counts.get(0, 0) > 10 and doctor.received.counts.get(0, 0) > 10  # the avatar, both
    assert 2 not in doctor.received.counts           # nothing else comes to the doctor


def test_room_ends_when_both_leave_or_idle(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with relay_server(tmp_path, empty_grace_s=0.5, idle_timeout_s=1.5) as server:
            idle, _ = await server.room()
            room, tokens = await server.room()
            patient = Peer(server.base, room, "patient", tokens["patient"])
            doctor = Peer(server.base, room, "doctor", tokens["doctor"])
            await patient.connect()
            await doctor.connect()
            assert server.relay.rooms.peers == 2
            for peer in (patient, doctor):
                status, _ = await peer.post("leave")
                assert status == 200
                await peer.close()
            await asyncio.sleep(1.5)
            assert server.relay.rooms.get(room) is None
            await asyncio.sleep(1.0)
            assert server.relay.rooms.get(idle) is None  # never joined: closed after the idle timeout
            status, body = await server.request("POST", f"/api/rooms/{room}/patient/offer", token=tokens["patient"], data="{}")
            assert status == 404

    run(scenario())


def test_doctor_ends_the_consultation(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with relay_server(tmp_path, _FlakyMasker) as server:
            room, tokens = await server.room()
            patient = Peer(server.base, room, "patient", tokens["patient"], video=_Camera([(320, 240)]))
            await patient.connect()
            await patient.wait_connected()
            while not patient.received.messages:  # the data channel is open
                await asyncio.sleep(0.05)
            status, _ = await server.request("DELETE", f"/api/rooms/{room}", token=tokens["patient"])
            assert status == 403
            status, _ = await server.request("DELETE", f"/api/rooms/{room}", token=tokens["doctor"], signed_in=False)
            assert status == 401
            status, _ = await server.request("DELETE", f"/api/rooms/{room}", token=tokens["doctor"])
            assert status == 200 and server.relay.rooms.get(room) is None
            await asyncio.sleep(0.3)
            assert {"type": "ended"} in patient.received.messages
            await patient.close()

    run(scenario())


def test_relay_keeps_the_newest_frames_and_follows_a_new_source() -> None:
    async def scenario() -> None:
        relay = FrameRelay("video")
        audio_like = relay.subscribe(maxlen=3)
        latest = relay.subscribe(maxlen=1)
        first = _Camera([(32, 24)])
        relay.set_source(first)
        await asyncio.sleep(0.3)  # ~18 frames, nobody reading
        frames = [await audio_like.recv() for _ in range(3)]
        assert [f.pts for f in frames] == list(range(frames[0].pts, frames[0].pts + 3))
        assert audio_like.dropped > 10 and latest.dropped > 10
        assert (await latest.recv()).pts >= frames[-1].pts
        second = _Camera([(64, 48)])
        relay.set_source(second)
        await asyncio.sleep(0.1)
        assert (await latest.recv()).width == 64
        relay.close()
        with pytest.raises(MediaStreamError):
            await latest.recv()

    run(scenario())


# --- the masking engine and track, with a stand-in masker -------------------------------

class _Camera(MediaStreamTrack):
    """Frames of changing sizes at ~60 fps, faster than the stand-in masker."""

    kind = "video"

    def __init__(self, sizes: list[tuple[int, int]]) -> None:
        super().__init__()
        self.sizes, self.count = sizes, 0

    async def recv(self) -> av.VideoFrame:
        await asyncio.sleep(1 / 60)
        width, height = self.sizes[min(self.count // 20, len(self.sizes) - 1)]
        self.count += 1
        frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), 200, np.uint8), format="rgb24")
        frame.pts = self.count
        return frame


class _FlakyMasker:
    """Every third frame raises; the others take 30 ms and return a flat 'avatar'."""

    closeup_size = None

    def __init__(self) -> None:
        self.calls = 0

    def process(self, rgb: np.ndarray) -> FrameResult:
        self.calls += 1
        if self.calls % 3 == 0:
            raise RuntimeError("simulated failure")
        time.sleep(0.03)
        return FrameResult(np.full_like(rgb, 50), True, {"head_yaw_deg": 1.0})

    def close(self) -> None:
        pass


def test_masked_track_never_raises_and_drops_stale_frames() -> None:
    async def scenario() -> None:
        metrics = Metrics()
        engine = MaskEngine(metrics, _FlakyMasker)
        camera = _Camera([(320, 240), (640, 360), (322, 182)])
        engine.attach(camera)
        track = MaskedVideoTrack(engine)
        frames = []
        start = time.monotonic()
        while time.monotonic() - start < 2.5:
            frames.append(await track.recv())
        await engine.close()
        with pytest.raises(MediaStreamError):
            await track.recv()
        return frames, metrics, camera.count

    frames, metrics, sent = run(scenario())  # type: ignore[misc]
    pts = [f.pts for f in frames]
    assert all(b > a for a, b in zip(pts, pts[1:]))
    values = {int(f.to_ndarray(format="rgb24")[0, 0, 0]) for f in frames}
    assert 200 not in values                   # never the camera's pixels
    assert BACKGROUND_RGB[0] in values and 50 in values  # placeholders for failures, else the avatar
    sizes = {(f.width, f.height) for f in frames}
    assert {(640, 360), (322, 182)} <= sizes   # follows the camera's size changes
    assert metrics.frames_dropped > 0 and metrics.frames_in == sent  # the worker skipped stale frames


class _StallingCamera(_Camera):
    """Frames at ~60 fps, with a stall of `stall_s` after frame 20."""

    def __init__(self, stall_s: float) -> None:
        super().__init__([(320, 240)])
        self.stall_s = stall_s

    async def recv(self) -> av.VideoFrame:
        if self.count == 20:
            await asyncio.sleep(self.stall_s)
        return await super().recv()


class _QuickMasker(_FlakyMasker):
    def process(self, rgb: np.ndarray) -> FrameResult:
        return FrameResult(np.full_like(rgb, 50), True, None)


def test_freezes_count_a_stalled_camera_not_a_patient_who_left() -> None:
    async def doctor_for(seconds: float, engine: MaskEngine, track: MaskedVideoTrack) -> None:
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            await track.recv()

    async def scenario() -> tuple[int, int]:
        counts = []
        for stall_s, rejoin in ((0.8, False), (0.3, False), (0.0, True)):
            metrics = Metrics()
            engine = MaskEngine(metrics, _QuickMasker)
            engine.attach(_StallingCamera(stall_s))
            track = MaskedVideoTrack(engine)
            await doctor_for(1.5, engine, track)
            if rejoin:   # the patient leaves for 1 s, then a new camera: no freeze
                engine.detach()
                await doctor_for(1.0, engine, track)
                engine.attach(_StallingCamera(0.0))
                await doctor_for(1.0, engine, track)
            await engine.close()
            counts.append(metrics.freezes)
        return counts

    assert run(scenario()) == [1, 0, 0]


def test_logged_errors_are_counted_in_metrics(tmp_path: Path) -> None:
    async def scenario() -> tuple[float, float]:
        async with relay_server(tmp_path) as server:
            values = []
            for _ in range(2):
                status, text = await server.request("GET", "/metrics")
                values.append(float(re.search(r"^dmask_errors_total (\S+)$", text, re.M).group(1)))
                logging.getLogger("server.test").error("a test error")
            return values

    before, after = run(scenario())
    assert after == before + 1
    assert not any(isinstance(h, ErrorCount) for h in logging.getLogger().handlers)  # removed with the app


def test_masked_track_sends_the_placeholder_when_anything_fails() -> None:
    async def scenario() -> list[av.VideoFrame]:
        engine = MaskEngine(Metrics(), _FlakyMasker)

        async def broken(seq: int, timeout: float) -> None:
            raise RuntimeError("simulated bug")

        engine.wait_newer = broken  # type: ignore[method-assign]
        track = MaskedVideoTrack(engine)
        frames = [await track.recv() for _ in range(3)]
        await engine.close()
        return frames

    frames = run(scenario())
    assert all(np.array_equal(f.to_ndarray(format="rgb24"), placeholder_frame(640, 480)) for f in frames)  # type: ignore[union-attr]
    assert [f.pts for f in frames] == sorted({f.pts for f in frames})  # type: ignore[union-attr]


def test_pacing_never_holds_a_30_fps_camera_and_caps_a_faster_one() -> None:
    track = MaskedVideoTrack(MaskEngine(Metrics(), _FlakyMasker))
    track._last_return = 100.0  # the previous frame went at t = 100 s
    for early in (0.0, 0.003, 0.005):  # the next frame of a 30 fps camera, on time or early by jitter
        assert track.pacing_wait(100.0 + 1 / 30 - early) == 0.0
    assert track.pacing_wait(100.0 + 1 / 60) == pytest.approx(1 / MAX_FPS - 1 / 60)  # 60 fps: held
    assert track.pacing_wait(100.0 + 1 / MAX_FPS) == 0.0


def test_answer_offers_loopback_candidate_and_chrome_start_bitrate(tmp_path: Path) -> None:
    async def scenario() -> str:
        async with relay_server(tmp_path) as server:
            room, tokens = await server.room()
            patient = Peer(server.base, room, "patient", tokens["patient"])
            await patient.connect()
            sdp = patient.pc.remoteDescription.sdp
            await patient.close()
            return sdp

    assert ice.loopback_candidate_enabled()  # serving on 127.0.0.1
    sdp = run(scenario())
    assert re.search(r"a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 ", sdp)
    assert re.search(r"a=fmtp:\d+ x-google-start-bitrate=\d+", sdp)
    assert "H264" not in sdp

    munged = munge_answer("m=video 9 UDP/TLS/RTP/SAVPF 97 98\r\na=rtpmap:97 VP8/90000\r\na=rtpmap:98 rtx/90000\r\na=fmtp:98 apt=97\r\n")
    assert "a=fmtp:97 x-google-start-bitrate=1200;x-google-min-bitrate=600;x-google-max-bitrate=2500" in munged
    assert "a=fmtp:98 apt=97\r\n" in munged


def test_self_signed_certificate_is_made_once_and_private(tmp_path: Path) -> None:
    cert, key = tls.ensure_certificate(tmp_path, ["dmask.example"])
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    first = cert.read_bytes()
    assert tls.ensure_certificate(tmp_path, ["dmask.example"])[0].read_bytes() == first  # cached
    assert tls.ensure_certificate(tmp_path, ["other.example"])[0].read_bytes() != first  # new names: new cert

    async def scenario() -> object:
        app = create_app(ServeConfig(https=True, data=tmp_path / "data"))
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls.server_context(tmp_path, ["other.example"]))
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(f"https://127.0.0.1:{port}/healthz", ssl=False) as response:
                    return await response.json()
        finally:
            await runner.cleanup()

    assert run(scenario()) == {"status": "ok", "rooms": 0, "peers": 0}


def test_serve_refuses_a_bad_ice_server_url(tmp_path: Path) -> None:
    result = run_dmask("serve", "--ice-server", "http://stun.example", cwd=tmp_path)
    assert_refused(result, "ICE server URL")
    result = run_dmask("serve", "--turn-url", "turn:turn.example:3478", cwd=tmp_path)
    assert_refused(result, "--turn-url and --turn-secret go together")
    result = run_dmask("serve", "--relay-only", cwd=tmp_path)
    assert_refused(result, "--relay-only needs a TURN server")


def test_each_page_gets_its_rooms_ice_configuration(tmp_path: Path) -> None:
    """The pages' STUN/TURN servers and fresh, per-room TURN credentials, for a valid link only."""
    async def scenario() -> None:
        page_ice = ice.PageIce(["stun:stun.example:3478"], ["turn:turn.example:3478"], "secret", 600.0, True)
        config = ServeConfig(recordings=tmp_path / "recordings", data=tmp_path / "data", page_ice=page_ice)
        async with relay_server(tmp_path, config=config) as server:
            room, tokens = await server.room()
            for role in ("patient", "doctor"):
                status, body = await server.request("GET", f"/api/rooms/{room}/{role}/ice", token=tokens[role])
                assert status == 200 and body["iceTransportPolicy"] == "relay"
                stun, turn = body["iceServers"]
                assert stun == {"urls": "stun:stun.example:3478"} and turn["urls"] == ["turn:turn.example:3478"]
                expiry, name = turn["username"].split(":")
                assert name == room and 590 <= int(expiry) - time.time() <= 600
                assert turn["credential"] == ice.turn_rest_credentials("secret", room, 0.0, now=float(expiry))[1]
            for path, token, expected in ((f"/api/rooms/{room}/doctor/ice", tokens["patient"], 403),
                                          (f"/api/rooms/{room}/patient/ice", None, 403),
                                          ("/api/rooms/nosuchroom/patient/ice", tokens["patient"], 404)):
                status, body = await server.request("GET", path, token=token)
                assert status == expected and "error" in body

    run(scenario())


def _packet(seq: int, timestamp: int, marker: bool) -> RtpPacket:
    packet = RtpPacket(payload_type=96, sequence_number=seq, timestamp=timestamp, marker=int(marker))
    packet._data = bytes([seq])  # type: ignore[attr-defined]  # the depayloaded bytes
    return packet


def test_jitter_buffer_releases_a_video_frame_with_its_marked_packet() -> None:
    assert jitter.install() and aiortc.rtcrtpreceiver.JitterBuffer is jitter.MarkerJitterBuffer
    buffer = jitter.MarkerJitterBuffer(capacity=128, is_video=True)
    assert buffer.add(_packet(0, 1000, False))[1] is None
    frame = buffer.add(_packet(1, 1000, True))[1]
    assert frame is not None and frame.data == b"\x00\x01" and frame.timestamp == 1000  # not waiting for frame 2
    # A gap: the marked packet alone is not a frame; it goes once the gap is filled.
    assert buffer.add(_packet(2, 4000, False))[1] is None
    assert buffer.add(_packet(4, 4000, True))[1] is None
    frame = buffer.add(_packet(3, 4000, False))[1]
    assert frame is not None and frame.data == b"\x02\x03\x04"
    # Audio keeps aiortc's prefetching.
    audio = jitter.MarkerJitterBuffer(capacity=16, prefetch=4)
    assert all(audio.add(_packet(i, 960 * i, True))[1] is None for i in range(4))
