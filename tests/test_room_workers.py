"""Each room's media in a worker process of its own (`server/worker.py`), as `dmask serve` runs it.

Two consultations with Python peers playing a real clip: each room has its own worker
process; killing one room's worker leaves the other room's video flowing and the front
answering, and the killed room's pages, reconnecting, get a new worker and the avatar
again. /metrics sums the workers' counters and counts the restart; a recording made in
a worker is listed by the front; closing the rooms ends every worker.
"""
from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from pathlib import Path

from client.latency.clip import ClipTrack, load_clip
from client.peer import Peer
from tests.test_server_protocol import WEBCAM, Server, relay_server, run


def _metric(text: str, name: str) -> float:
    return float(re.search(rf"^{name} (\S+)$", text, re.M).group(1))  # type: ignore[union-attr]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _face_shown(doctor: Peer) -> bool:
    """The relay's latest live values to the doctor say the avatar follows a face."""
    params = [m for m in doctor.received.messages if m["type"] == "params"]
    return bool(params) and params[-1]["face"]


async def _call(server: Server, clip, room_id: str, tokens: dict[str, str]) -> tuple[Peer, Peer]:
    """A patient sending the clip as an endless camera, and a doctor, connected to the room."""
    patient = Peer(server.base, room_id, "patient", tokens["patient"], video=ClipTrack(clip))
    doctor = Peer(server.base, room_id, "doctor", tokens["doctor"])
    for peer in (patient, doctor):
        await peer.connect()
    for peer in (patient, doctor):
        await peer.wait_connected(timeout=30)
    deadline = time.monotonic() + 30
    while not _face_shown(doctor) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    return patient, doctor


def test_rooms_in_their_own_workers_survive_each_others_crash(tmp_path: Path) -> None:
    clip = load_clip(WEBCAM)

    async def scenario() -> list[int]:
        async with relay_server(tmp_path, room_workers=True) as server:
            (a_id, a_tokens), (b_id, b_tokens) = await server.room(), await server.room()
            a_patient, a_doctor = await _call(server, clip, a_id, a_tokens)
            b_patient, b_doctor = await _call(server, clip, b_id, b_tokens)
            room_a, room_b = server.relay.rooms.get(a_id), server.relay.rooms.get(b_id)
            pids = [room_a.pid, room_b.pid]
            assert None not in pids and len({*pids, os.getpid()}) == 3
            status, text = await server.request("GET", "/metrics")
            assert status == 200 and _metric(text, "dmask_room_workers") == 2
            assert _metric(text, "dmask_sessions") == 4 and _metric(text, "dmask_frames_out_total") > 0

            # The peers share this process with the front (the capacity figures come from
            # `dmask latency`), so room b's frames after the crash are compared with its own
            # before it.
            for peer in (a_patient, a_doctor):
                await peer.close()
            count = b_doctor.received.counts
            start = count[0]
            await asyncio.sleep(3.0)
            before = count[0] - start
            os.kill(room_a.pid, signal.SIGKILL)
            start, t0 = count[0], time.monotonic()
            status, _ = await server.request("GET", "/healthz")
            assert status == 200 and time.monotonic() - t0 < 1.0
            await asyncio.sleep(3.0)
            assert count[0] - start >= 0.5 * before > 0
            assert _face_shown(b_doctor)

            # Room a's pages reconnect (as the browser pages do by themselves): a new worker.
            patient, doctor = await _call(server, clip, a_id, a_tokens)
            await asyncio.sleep(2.0)
            assert _face_shown(doctor) and doctor.received.counts[0] > 30
            assert room_a.pid not in (None, pids[0]) and room_a.restarts == 1
            pids.append(room_a.pid)
            status, text = await server.request("GET", "/metrics")
            assert _metric(text, "dmask_room_worker_restarts") == 1 and _metric(text, "dmask_room_workers") == 2

            # Recording runs in the room's worker; the front lists what it wrote.
            status, body = await server.request("POST", f"/api/rooms/{b_id}/recording", token=b_tokens["doctor"],
                                                json={"action": "start"})
            assert status == 200 and body["recording"]
            await asyncio.sleep(1.5)
            status, body = await server.request("POST", f"/api/rooms/{b_id}/recording", token=b_tokens["doctor"],
                                                json={"action": "stop"})
            assert status == 200 and not body["recording"] and body["files"]
            status, listing = await server.request("GET", f"/api/rooms/{b_id}/recordings", token=b_tokens["doctor"])
            assert status == 200 and sorted(f["name"] for f in listing) == sorted(body["files"])
            assert all(f["size"] > 0 for f in listing)
            for peer in (patient, doctor, b_patient, b_doctor):
                await peer.close()
        return pids

    pids = run(scenario())
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in pids)  # closing the rooms ended every worker
