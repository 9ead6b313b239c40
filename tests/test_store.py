"""Restart without loss: the rooms' store, crash-safe recordings, and a relay killed
mid-consultation in Chromium.

- `RoomStore`: rooms as created come back on load, with token digests on disk and never
  the tokens; closed and idle rooms do not come back; a restarted relay opens the links
  from before, until the room is ended.
- A relay stopped while recording, then started again: the same links connect, and a
  new recording begins with the patient's video, the doctor told it was resumed.
- A recorder killed with SIGKILL leaves hidden files that `recording.recover` turns into
  a fragmented MP4 decoding to nearly every frame written (all but the last second at
  most) and a parameter log of whole lines.
- `dmask serve` killed with -9 while recording and started again on the same port and
  data directory: both pages are live again by themselves, the recording from before
  the crash is playable, a new one is being written. The time from the restart to both
  pages live (and to the front answering) goes to test-artifacts/restart.json.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import av
import pytest

from dmask_rt.paramlog import read_params
from server.db import DB_NAME, open_db
from server.recording import PART_RE, _lock, recover
from server.rooms import Limits, RoomRegistry, new_tokens, role_for
from server.store import RoomStore, token_digest

from conftest import DMASK

REPO = Path(__file__).resolve().parents[1]


# --- the store ------------------------------------------------------------------------

def test_store_keeps_open_rooms_with_digests_never_tokens(tmp_path: Path) -> None:
    tokens = new_tokens()
    digests = {role: token_digest(token) for role, token in tokens.items()}
    store = RoomStore(open_db(tmp_path))
    now = time.time()
    store.add("room-a", digests, now - 100)
    store.add("room-b", {"patient": token_digest("p"), "doctor": token_digest("d")}, now - 50)
    store.add("room-c", {"patient": token_digest("p2"), "doctor": token_digest("d2")}, now - 40)
    store.touch("room-a", now - 10, True)
    store.set_recording("room-a", True, True)
    store.close("room-b", now - 5)

    again = RoomStore(open_db(tmp_path))   # as after a restart
    rooms = again.load_open(idle_timeout_s=1800, now=now)
    assert [r.id for r in rooms] == ["room-a", "room-c"]
    a = rooms[0]
    assert a.digests == digests and a.ever_joined and a.recording and a.recording_audio
    assert a.last_activity == pytest.approx(now - 10) and a.created == pytest.approx(now - 100)
    assert not rooms[1].ever_joined and not rooms[1].recording
    assert role_for(a.digests, tokens["doctor"]) == "doctor" and role_for(a.digests, tokens["patient"]) == "patient"
    assert role_for(a.digests, digests["doctor"]) is None   # the digest itself opens nothing
    assert role_for(a.digests, None) is None and role_for(a.digests, "") is None

    on_disk = b"".join(p.read_bytes() for p in tmp_path.glob(DB_NAME + "*"))   # the database and its WAL
    assert digests["patient"].encode() in on_disk
    for token in tokens.values():
        assert token.encode() not in on_disk
    assert oct(os.stat(tmp_path / DB_NAME).st_mode & 0o777) == "0o600"

    # Idle past the timeout while the relay was down: closed on load, for good.
    assert [r.id for r in again.load_open(idle_timeout_s=30, now=now)] == ["room-a"]
    assert [r.id for r in again.load_open(idle_timeout_s=1800, now=now)] == ["room-a"]


class _FakeRoom:
    """What the registry uses of a room (rooms.RoomLike), without media."""

    def __init__(self, room_id: str, digests: dict[str, str], restored: bool) -> None:
        self.id, self.digests, self.restored = room_id, digests, restored
        self.last_activity, self.ever_joined, self.roles = time.monotonic(), False, set()
        self.resumed: bool | None = None
        self.closed_as: bool | None = None

    def resume_recording(self, audio: bool) -> None:
        self.resumed = audio

    async def refresh(self) -> None:
        pass

    async def close(self, ended: bool = True) -> None:
        self.closed_as = ended


def test_registry_restores_its_rooms_and_their_recording(tmp_path: Path) -> None:
    async def scenario() -> None:
        registry = RoomRegistry(Limits(), _FakeRoom, RoomStore(open_db(tmp_path)))
        kept, tokens = registry.create()
        ended, _ = registry.create()
        registry.recorded(kept, True, False)
        await registry.close_room(ended, "ended by the doctor")
        assert ended.closed_as is True
        await registry.close()   # the relay stopping: the room stays stored
        assert kept.closed_as is False

        restarted = RoomRegistry(Limits(), _FakeRoom, RoomStore(open_db(tmp_path)))
        restarted.restore()
        assert list(restarted.rooms) == [kept.id]
        room = restarted.rooms[kept.id]
        assert room.restored and room.resumed is False   # recording again, without audio
        assert room.digests == kept.digests and role_for(room.digests, tokens["patient"]) == "patient"

    asyncio.run(scenario())


def test_links_work_across_restarts_until_the_room_ends(tmp_path: Path) -> None:
    """The relay stopped and started again on the same data directory: the links from
    before still open their pages (and only their own); once the doctor ends the room, a
    further restart does not bring it back."""
    from test_server_protocol import relay_server

    async def scenario() -> None:
        async with relay_server(tmp_path) as server:
            room, tokens = await server.room()
        async with relay_server(tmp_path) as server:
            for role in ("patient", "doctor"):
                status, body = await server.request("GET", f"/api/rooms/{room}/{role}/ice", token=tokens[role])
                assert status == 200, body
            status, _ = await server.request("GET", f"/api/rooms/{room}/patient/ice", token=tokens["doctor"])
            assert status == 403
            await server.sign_in()   # ending a room is a clinician's (the account, too, was kept)
            status, _ = await server.request("DELETE", f"/api/rooms/{room}", token=tokens["doctor"])
            assert status == 200
        async with relay_server(tmp_path) as server:
            status, _ = await server.request("GET", f"/api/rooms/{room}/doctor/ice", token=tokens["doctor"])
            assert status == 404

    asyncio.run(scenario())


def test_a_recording_resumes_in_a_new_file_after_a_restart(tmp_path: Path) -> None:
    """Recording when the relay stops (its media in this process): the file is finished and
    the pages are not told the consultation ended; after the restart the same links
    connect again and, with the patient's first frame, a new recording begins, which the
    doctor is told was resumed."""
    from aiortc.contrib.media import MediaPlayer

    from client.peer import Peer
    from test_server_protocol import WEBCAM, _call, relay_server

    async def scenario() -> None:
        async with relay_server(tmp_path) as server:
            patient, doctor, room = await _call(server, WEBCAM, 0.5)
            status, body = await server.request("POST", f"/api/rooms/{room}/recording", token=doctor.token,
                                                json={"action": "start", "audio": True})   # a signed-in clinician
            assert status == 200 and body["recording"]
            first = body["files"]
            await asyncio.sleep(2)
        assert not [m for m in patient.received.messages + doctor.received.messages if m["type"] == "ended"]
        await patient.close()
        await doctor.close()
        directory = tmp_path / "recordings" / room
        assert sorted(p.name for p in directory.iterdir()) == sorted(first)

        async with relay_server(tmp_path) as server:
            player = MediaPlayer(str(WEBCAM), loop=True)
            patient = Peer(server.base, room, "patient", patient.token, video=player.video, audio=player.audio)
            doctor = Peer(server.base, room, "doctor", doctor.token)
            for peer in (patient, doctor):
                await peer.connect()
                await peer.wait_connected()
            deadline = time.monotonic() + 30
            while not any(m.get("resumed") for m in doctor.received.messages) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert {"type": "recording", "active": True, "resumed": True} in doctor.received.messages
            await asyncio.sleep(2)
            await server.sign_in()   # the account, too, was kept
            status, body = await server.request("POST", f"/api/rooms/{room}/recording", token=doctor.token,
                                                json={"action": "stop"})
            assert status == 200 and not body["recording"] and set(body["files"]).isdisjoint(first)
            await patient.close()
            await doctor.close()
        for name in body["files"]:
            if name.endswith(".mp4"):
                with av.open(str(directory / name)) as container:
                    assert {s.type for s in container.streams} == {"video", "audio"}   # audio, as chosen
                    assert sum(1 for _ in container.decode(video=0)) >= 10

    asyncio.run(scenario())


# --- crash-safe recordings --------------------------------------------------------------

RECORDER = """
import asyncio, sys, types
from pathlib import Path
import av, numpy as np
from aiortc.mediastreams import MediaStreamTrack
from server.recording import Recorder

class Track(MediaStreamTrack):
    kind = "video"
    def __init__(self, recorder_ref):
        super().__init__(); self.n = 0; self.ref = recorder_ref
    async def recv(self):
        await asyncio.sleep(1 / 30)
        if self.n:   # the previous frame is encoded (one executor thread): count it
            print(self.n, flush=True)
        image = np.zeros((240, 320, 3), np.uint8); image[:, (self.n * 4) % 320] = 255
        self.ref[0].write_params(types.SimpleNamespace(face_found=False, params=None))
        self.n += 1
        return av.VideoFrame.from_ndarray(image, format="rgb24")

class Engine:
    def __init__(self): self.ref = [None]
    def picture_track(self): return Track(self.ref)

async def main():
    engine = Engine()
    engine.ref[0] = Recorder(Path(sys.argv[1]), engine, [])
    engine.ref[0].start()
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def test_a_recording_killed_with_sigkill_is_recovered_playable(tmp_path: Path) -> None:
    directory = tmp_path / "room"
    child = subprocess.Popen([sys.executable, "-c", RECORDER, str(directory)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    written, start = 0, time.monotonic()
    assert child.stdout is not None
    while written < 100:   # 3.3 s of video at 30 fps
        line = child.stdout.readline()
        assert line, "the recorder exited"
        written = int(line)
        assert time.monotonic() - start < 60
    assert recover(directory) == []   # the live recorder's files are locked: left alone
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    written = int(([str(written)] + child.stdout.read().split())[-1])   # what it printed until killed
    hidden = sorted(p.name for p in directory.iterdir())
    assert len(hidden) == 2 and all(name.startswith(".") for name in hidden), hidden

    recovered = recover(directory)
    assert sorted(p.name for p in directory.iterdir()) == sorted(recovered)
    video = next(directory.glob("*.mp4"))
    with av.open(str(video)) as container:
        frames = [frame.time for frame in container.decode(video=0)]
    # At most the last fragment (one second: 30 frames) and the frame being encoded are lost.
    assert written - 32 <= len(frames) <= written + 1, (len(frames), written)
    assert frames[-1] >= 2.0
    rows = read_params(next(directory.glob("*.params.jsonl")))
    assert written - 32 <= len(rows) and [r["frame"] for r in rows] == list(range(len(rows)))


def test_recover_cuts_a_torn_fragment_and_a_torn_line(tmp_path: Path) -> None:
    # A whole recording, its hidden names, each cut mid-way as a crash would leave it.
    source = tmp_path / "whole"
    subprocess.run([sys.executable, "-c", RECORDER.replace("asyncio.sleep(3600)", "asyncio.sleep(2.5)\n    await engine.ref[0].stop()"),
                    str(source)], cwd=REPO, check=True, capture_output=True)
    mp4 = next(source.glob("*.mp4"))
    stem = mp4.name.removesuffix(".mp4")
    with av.open(str(mp4)) as container:
        whole = sum(1 for _ in container.decode(video=0))
    room = tmp_path / "room"
    room.mkdir()
    data = mp4.read_bytes()
    part_video = room / f".{stem}.0123abcd.part.mp4"
    part_video.write_bytes(data[: len(data) - 700])   # into the last fragment's data
    part_params = room / f".{stem}.params.0123abcd.part.jsonl"
    part_params.write_text('{"frame": 0, "time": 0.0, "face_found": false}\n{"frame": 1, "ti')
    locked = room / ".20990101-000000.89abcdef.part.mp4"
    locked.write_bytes(data)
    assert all(PART_RE.match(p.name) for p in (part_video, part_params, locked))
    lock = _lock(locked)   # another process still writing it
    try:
        assert sorted(recover(room)) == [f"{stem}.mp4", f"{stem}.params.jsonl"]
    finally:
        os.close(lock)
    assert locked.exists()
    assert (room / f"{stem}.params.jsonl").read_text() == '{"frame": 0, "time": 0.0, "face_found": false}\n'
    with av.open(str(room / f"{stem}.mp4")) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert whole - 31 <= frames < whole


# --- a relay killed mid-consultation, in Chromium -----------------------------------------

def test_pages_and_recording_survive_a_killed_relay(tmp_path: Path) -> None:
    from test_server_browser import ARTIFACTS, CLIP, _wait_playing, _write_y4m, chromium_consultation, start_serve

    width, height = _write_y4m(CLIP, tmp_path / "camera.y4m")
    recordings = tmp_path / "recordings"
    data = tmp_path / "data"
    args = ("--data", str(data), "--recordings", str(recordings))
    server, base = start_serve(tmp_path, *args, data=data)
    live = "() => document.querySelector('#status').dataset.state === 'live'"
    # Frames the doctor's <video> presents from now on, whichever connection they come by.
    count_frames = """() => { const v = document.querySelector('#masked'); window.presented = 0;
        const tick = () => { window.presented++; v.requestVideoFrameCallback(tick); };
        v.requestVideoFrameCallback(tick); }"""
    try:
        with chromium_consultation(base, tmp_path / "camera.y4m", width, height) as (patient, doctor, links):
            for page in (doctor, patient):
                page.wait_for_function(live, timeout=20000)
            doctor.click("#record")
            doctor.wait_for_function("() => document.querySelector('#record').getAttribute('aria-pressed') === 'true'",
                                     timeout=10000)
            doctor.wait_for_timeout(3000)
            workers = subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True, text=True).stdout.split()
            assert len(workers) == 1, workers
            server.send_signal(signal.SIGKILL)
            server.wait()
            deadline = time.monotonic() + 15   # its worker follows: its stdin closed
            while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
            for page in (doctor, patient):
                page.wait_for_function("() => document.querySelector('#status').dataset.state === 'reconnecting'",
                                       timeout=15000)
            before = sorted(p.name for p in (recordings / links["id"]).iterdir())
            doctor.evaluate(count_frames)   # the dead connection presents no more

            port = base.rsplit(":", 1)[1]
            restarted = time.monotonic()
            server = subprocess.Popen([*DMASK, "serve", "--port", port, *args], cwd=tmp_path,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            while True:   # the front answers again (its imports and start-up: not the pages' doing)
                try:
                    urllib.request.urlopen(base + "/healthz", timeout=1)
                    break
                except OSError:
                    assert server.poll() is None and time.monotonic() - restarted < 60
                    time.sleep(0.1)
            up = time.monotonic() - restarted
            for page in (doctor, patient):
                page.wait_for_function(live, timeout=60000)
            doctor.wait_for_function("() => window.presented > 30", timeout=30000)
            back = time.monotonic() - restarted
            _wait_playing(doctor, "#masked", width, height, timeout_s=10)
            doctor.wait_for_function("() => document.querySelector('#status').textContent.includes('Recording resumed')",
                                     timeout=10000)
            assert doctor.get_attribute("#record", "aria-pressed") == "true"
            doctor.screenshot(path=str(ARTIFACTS / "restart-doctor.png"), full_page=True)
            ARTIFACTS.mkdir(exist_ok=True)
            (ARTIFACTS / "restart.json").write_text(json.dumps({"relay_up_s": round(up, 2), "pages_live_again_s": round(back, 2)}) + "\n")

            # The recording from before the crash: finished by the worker as the front died.
            first = [name for name in before if name.endswith(".mp4")]
            assert len(first) == 1 and not first[0].startswith("."), before
            with av.open(str(recordings / links["id"] / first[0])) as container:
                times = [frame.time for frame in container.decode(video=0)]
            assert times[-1] - times[0] >= 2.0 and len(times) >= 20, (len(times), times[-1:])   # 20: a loaded machine's fps
            # A new one is being written: hidden while it lasts, its own name.
            doctor.wait_for_timeout(2000)
            now = sorted(p.name for p in (recordings / links["id"]).iterdir())
            hidden = [name for name in now if name.startswith(".") and name.endswith(".part.mp4")]
            assert len(hidden) == 1 and os.path.getsize(recordings / links["id"] / hidden[0]) > 0, now
            listed = doctor.evaluate("""async (room) => (await (await fetch(`/api/rooms/${room}/recordings`)).json())
                .map((f) => f.name)""", links["id"])   # the signed-in doctor, by the room's cookie
            assert first[0] in listed
    finally:
        server.terminate()
        log = server.communicate(timeout=30)[0]
    assert "token=" not in log
    assert "recording resumed" in log
