"""Rooms on a Ray cluster: `dmask serve --cluster ADDRESS`.

The front stays one process (pages, links, signalling, `app.py`); each room's media
worker (`worker.py`'s API over one room) runs as a Ray actor that reserves ROOM_CPUS of
a CPU on any node, the rooms spread over the nodes. The pages' media goes straight to
that node: the actor's peer connections gather the node's own addresses (or use the
TURN relay the pages are given, `ice.py`), and the front reaches the actor's API at the
node's address with the room's key. The cluster's network carries the signalling in
the clear (like Ray's own traffic): it must be a private one.

If a node is lost, its rooms' actors die with it: the front notices at its next look
(about a second), shows nobody connected, and the pages' own reconnect places a new
actor on a live node; meanwhile the pages show their placeholder, never camera pixels.
Ray is imported only by this module, and this module only with --cluster.
"""
from __future__ import annotations

import asyncio
import json
import logging
import threading

import ray
from ray.exceptions import RayError

from .metrics import Metrics
from .worker import START_TIMEOUT_S, WorkerRoom, WorkerSettings, WorkerUnavailable, serve_worker

log = logging.getLogger(__name__)

#: The CPU share each room's actor reserves on its node.
ROOM_CPUS = 1.0
#: How long the front waits for a lost actor's answer before calling it gone.
PING_TIMEOUT_S = 3.0


def connect(address: str) -> None:
    """Join the Ray cluster at `address` as a client (the front starts nothing of Ray's)."""
    ray.init(address=address, namespace="dmask", logging_level=logging.WARNING, log_to_driver=False)


@ray.remote
class RoomActor:
    """One room's media worker on a cluster node: `worker.serve_worker` on the node's address."""

    def __init__(self, settings_json: str) -> None:
        settings = WorkerSettings(**json.loads(settings_json))
        self._ip = ray.util.get_node_ip_address()
        self._port: int | None = None
        self._ready = threading.Event()
        threading.Thread(target=asyncio.run, args=(self._serve(settings),), daemon=True).start()

    async def _serve(self, settings: WorkerSettings) -> None:
        runner, self._port, done = await serve_worker(settings, self._ip)
        self._ready.set()
        await done.wait()
        await runner.cleanup()

    def address(self) -> tuple[str, int, str]:
        """(node address, port, node id) once the API serves."""
        if not self._ready.wait(START_TIMEOUT_S):
            raise RuntimeError("the room's media worker did not start")
        return self._ip, int(self._port or 0), ray.get_runtime_context().get_node_id()


class ClusterRoom(WorkerRoom):
    """A room whose worker is a `RoomActor` somewhere on the cluster."""

    def __init__(self, room_id: str, settings: WorkerSettings, metrics: Metrics, digests: dict[str, str],
                 start: bool = True) -> None:
        self._actor: ray.actor.ActorHandle | None = None
        self._dead = False
        super().__init__(room_id, settings, metrics, digests, start)

    async def _launch(self) -> str:
        actor = RoomActor.options(num_cpus=ROOM_CPUS, scheduling_strategy="SPREAD", max_restarts=0).remote(
            self._settings.to_json())
        try:
            ip, port, node = await asyncio.wait_for(actor.address.remote(), START_TIMEOUT_S)
        except (RayError, asyncio.TimeoutError) as err:
            ray.kill(actor)
            raise WorkerUnavailable(f"no node could start the room's media worker ({type(err).__name__})") from None
        self._actor, self._dead, self.node = actor, False, node
        log.info("room %s: media worker on node %s", self.id, node[:12])
        return f"http://{ip}:{port}"

    def _gone(self) -> bool:
        return self._actor is None or self._dead

    async def _lost(self) -> bool:
        if self._actor is None:
            return True
        try:
            await asyncio.wait_for(self._actor.address.remote(), PING_TIMEOUT_S)
        except (RayError, asyncio.TimeoutError):
            self._dead = True
        return self._dead

    async def _stop(self) -> None:
        actor, self._actor = self._actor, None
        if actor is not None:
            ray.kill(actor)
