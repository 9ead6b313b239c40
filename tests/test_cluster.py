"""`--cluster`: live rooms placed as Ray actors, and archive files masked as Ray tasks,
over a local two-node Ray cluster.

Two "nodes" on this machine (`ray.cluster_utils.Cluster`, as Ray's own tests make
them), each with 2 CPUs. Two consultations with Python peers land on different nodes
(/metrics shows one room per node); removing one room's node ends its actor, the front
sees nobody connected there, and that room's reconnecting pages get a new actor on the
surviving node and the avatar again, while the other room keeps going. A batch on the
cluster writes the same outputs as on local worker processes.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import ray
from aiohttp import web
from ray.cluster_utils import Cluster

from client.latency.clip import load_clip
from conftest import run_dmask
from server.app import RELAY, ServeConfig, create_app
from tests.test_batch import CUT, clips, files_under, frames_of, two_workers  # noqa: F401 - fixtures
from tests.test_room_workers import _call, _face_shown, _metric
from tests.test_server_protocol import WEBCAM, Server, run


@asynccontextmanager
async def front(tmp_path: Path, address: str) -> AsyncIterator[Server]:
    app = create_app(ServeConfig(recordings=tmp_path / "recordings", data=tmp_path / "data", cluster=address))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield Server(f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}", app[RELAY])  # type: ignore[union-attr]
    finally:
        await runner.cleanup()


def test_rooms_spread_over_nodes_and_move_when_a_node_is_lost(tmp_path: Path) -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    second = cluster.add_node(num_cpus=2)
    clip = load_clip(WEBCAM)

    async def scenario() -> None:
        async with front(tmp_path, cluster.address) as server:
            (a_id, a_tokens), (b_id, b_tokens) = await server.room(), await server.room()
            a_patient, a_doctor = await _call(server, clip, a_id, a_tokens)
            b_patient, b_doctor = await _call(server, clip, b_id, b_tokens)
            room_a, room_b = server.relay.rooms.get(a_id), server.relay.rooms.get(b_id)
            assert _face_shown(a_doctor) and _face_shown(b_doctor)
            assert room_a.node and room_b.node and room_a.node != room_b.node   # spread over both nodes
            status, text = await server.request("GET", "/metrics")
            for room in (room_a, room_b):
                assert _metric(text, f'dmask_rooms_on_node{{node="{room.node}"}}') == 1

            lost, kept = (room_a, room_b) if room_a.node == second.node_id else (room_b, room_a)
            lost_peers = (a_patient, a_doctor) if lost is room_a else (b_patient, b_doctor)
            kept_doctor = b_doctor if lost is room_a else a_doctor
            cluster.remove_node(second)
            t0 = time.monotonic()
            while lost.roles and time.monotonic() - t0 < 15:   # the front notices at a refresh
                await asyncio.sleep(0.2)
            assert not lost.roles and not lost.running
            assert kept.running and kept.roles == {"patient", "doctor"}
            before = kept_doctor.received.counts[0]
            for peer in lost_peers:
                await peer.close()
            lost_tokens = a_tokens if lost is room_a else b_tokens
            patient, doctor = await _call(server, clip, lost.id, lost_tokens)   # the pages reconnect
            assert _face_shown(doctor) and lost.running and lost.node == kept.node and lost.restarts == 1
            assert kept_doctor.received.counts[0] > before and _face_shown(kept_doctor)
            status, text = await server.request("GET", "/metrics")
            assert _metric(text, f'dmask_rooms_on_node{{node="{kept.node}"}}') == 2
            for peer in (patient, doctor, a_patient, a_doctor, b_patient, b_doctor):
                await peer.close()

    try:
        run(scenario())
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_batch_on_the_cluster_gives_the_local_outputs(clips: Path, two_workers: tuple, tmp_path: Path) -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    cluster.add_node(num_cpus=2)
    try:
        result = run_dmask("mask", clips / "a.mp4", clips / "b.mp4", clips / "bad.mp4", "--cluster", cluster.address,
                           "--params", "jsonl", "--summary", "summary.json", "-o", "masked", "--quiet", cwd=tmp_path)
    finally:
        cluster.shutdown()
    assert result.returncode == 2, result.stderr   # bad.mp4 fails, the others are masked
    assert files_under(tmp_path / "masked") == ["a.masked.mp4", "a.params.jsonl", "b.masked.mp4", "b.params.jsonl"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [f["status"] for f in summary["files"]] == ["done", "done", "failed"]
    assert summary["totals"]["workers"] == 4 and summary["totals"]["frames"] == 2 * CUT   # the cluster's CPUs
    local = two_workers[0] / "masked"
    for name in ("a", "b"):
        ours, theirs = frames_of(tmp_path / "masked" / f"{name}.masked.mp4"), frames_of(local / f"{name}.masked.mp4")
        assert len(ours) == len(theirs) == CUT and all((x == y).all() for x, y in zip(ours, theirs))
        assert (tmp_path / "masked" / f"{name}.params.jsonl").read_text() == (local / f"{name}.params.jsonl").read_text()
