"""One consultation's media in a process of its own.

`dmask serve` is split in two: the front (`app.py`: pages, links, signalling, the
rooms' lifetimes) and, per room, a worker process that holds the room's peer
connections and does all of its media work (decode, track, fit, render, encode,
recording). Rooms therefore use every core, and a slow room cannot stall another or the
signalling. A worker that dies is started again at the room's next offer; the pages
reconnect by themselves and show the placeholder meanwhile. A new worker first makes
playable what a dead one left of its recordings (`recording.recover`), and records again
if the room was recording (`WorkerSettings.resume_recording`).

The front drives its worker over HTTP on 127.0.0.1, every request carrying the worker's
own random key:

    POST /offer/{role}   {"sdp"} -> {"sdp"}      400 unusable offer, 503 no candidates in time
    POST /leave/{role}
    POST /recording      {"action": "start" | "stop", "audio": bool} -> {"recording", "files"}
    GET  /state          {"sessions": [roles], "idle_s", "ever_joined", "recording", "metrics"}
    POST /close          {"ended": bool} ends the room (telling the pages it ended, or not:
                         the relay is stopping), then the process

`python -m server.worker` reads its `WorkerSettings` as one JSON line on stdin, prints
{"port": N} once it serves, and exits when its stdin closes (the front is gone: its
recording is finished, and the pages are not told the consultation ended, so they keep
trying to reconnect to the front's next start).
"""
from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import os
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from . import ice, jitter, signaling
from .media import MaskerFactory
from .metrics import Metrics, count_errors
from .recording import recover
from .rooms import ROLES, MediaSettings, Room, role_for

log = logging.getLogger(__name__)

KEY_HEADER = "X-Dmask-Worker-Key"
#: Waits of the front on its worker: starting (imports, aiortc), an offer (candidate
#: gathering, signaling.ANSWER_TIMEOUT_S), anything else.
START_TIMEOUT_S, OFFER_TIMEOUT_S, CALL_TIMEOUT_S = 60.0, 30.0, 10.0


class WorkerUnavailable(RuntimeError):
    """The room's worker could not be reached or started (HTTP 503; the pages retry)."""


@dataclass
class WorkerSettings:
    room_id: str
    recordings: str                       # the room's recordings go to <recordings>/<room_id>
    masker: str = "server.media:default_masker"   # "module:factory", imported in the worker
    ice_servers: list[str] = field(default_factory=list)
    turn_username: str | None = None
    turn_password: str | None = None
    frame_reports: bool = False
    loopback: bool = False                # also gather the 127.0.0.1 candidate (`ice.py`)
    resume_recording: bool | None = None  # the room records (with audio or not) from the patient's first frame
    key: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def masker_factory(spec: str) -> MaskerFactory:
    """The factory named "module:attribute"."""
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


class WorkerRoom:
    """The front's handle on a room whose media runs in a worker process (`rooms.RoomLike`).

    The worker starts with the room (it imports while the links travel; a room restored
    after a restart, `start=False`, at its first offer), is started again by the next
    offer if it is gone, and is ended with the room; `refresh()` fetches
    who is connected, the activity and the recording state, and the worker's metrics.
    Where the worker runs is three methods, `_launch`, `_gone` and `_stop`: a child
    process here, a Ray actor on any node of a cluster in `cluster.py`.
    """

    #: The cluster node the worker runs on (None: this machine).
    node: str | None = None
    #: Called when a running worker is found gone (the front tells the pages to reconnect).
    on_lost: Callable[[], None] | None = None

    def __init__(self, room_id: str, settings: WorkerSettings, metrics: Metrics, digests: dict[str, str],
                 start: bool = True) -> None:
        self.id = room_id
        self.digests = digests
        self.last_activity = time.monotonic()
        self.ever_joined = False
        self.metrics_snapshot: dict | None = None   # the running worker's, at the last refresh
        self.starts = 0
        self.closed = False
        self._settings = settings
        self._metrics = metrics
        self._roles: set[str] = set()
        self._recording = False
        self._running = False
        self._base = ""
        self._http: aiohttp.ClientSession | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._starting: asyncio.Future[None] | None = asyncio.ensure_future(self._start()) if start else None

    def role_for(self, token: str | None) -> str | None:
        return role_for(self.digests, token)

    @property
    def roles(self) -> set[str]:
        return set(self._roles)

    @property
    def recording(self) -> bool:
        return self._recording

    @property
    def restarts(self) -> int:
        """Workers started after the first (each after one was gone)."""
        return max(0, self.starts - 1)

    @property
    def running(self) -> bool:
        return self._running and not self._gone()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self.running else None

    # --- where the worker runs: a child process -------------------------------------------
    async def _launch(self) -> str:
        """Start the worker; its base URL."""
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "server.worker", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write((self._settings.to_json() + "\n").encode())
        await process.stdin.drain()
        try:
            port = json.loads(await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT_S))["port"]
        except (asyncio.TimeoutError, ValueError, KeyError):
            process.kill()
            await process.wait()
            raise WorkerUnavailable("the room's media worker did not start") from None
        self._process = process
        log.info("room %s: media worker pid %d", self.id, process.pid)
        return f"http://127.0.0.1:{port}"

    def _gone(self) -> bool:
        return self._process is None or self._process.returncode is not None

    async def _lost(self) -> bool:
        """After a call failed: is the worker gone (else it was only slow)?"""
        return self._gone()

    async def _stop(self) -> None:
        """End the worker (after /close, or if it does not answer)."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), CALL_TIMEOUT_S)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()

    # --- lifetime ---------------------------------------------------------------------
    async def _start(self) -> None:
        self._base = await self._launch()
        self._running = True
        self.starts += 1

    async def _ready(self) -> None:
        """Wait for the worker; start another if it is gone."""
        if self.closed:
            raise WorkerUnavailable("the consultation has ended")
        if self._running and self._gone():
            self._forget_worker()
        if not self._running and self._starting is None:
            self._starting = asyncio.ensure_future(self._start())
        if self._starting is not None:
            starting = self._starting
            try:
                await starting
            finally:
                if self._starting is starting:
                    self._starting = None

    def _forget_worker(self) -> None:
        lost = self._running and not self.closed
        if lost:
            log.warning("room %s: media worker gone", self.id)
        if self.metrics_snapshot is not None:
            self._metrics.absorb(self.metrics_snapshot)
        self.metrics_snapshot = None
        self._running, self._base = False, ""
        self._roles.clear()
        self._recording = False
        if lost:
            self._starting = asyncio.ensure_future(self._start())   # a new worker while the pages come back
            if self.on_lost is not None:
                self.on_lost()

    async def _call(self, method: str, path: str, body: dict | None = None,
                    timeout: float = CALL_TIMEOUT_S) -> tuple[int, dict]:
        await self._ready()
        if self._http is None:
            self._http = aiohttp.ClientSession(headers={KEY_HEADER: self._settings.key})
        try:
            async with self._http.request(method, self._base + path, json=body,
                                          timeout=aiohttp.ClientTimeout(total=timeout)) as response:
                return response.status, await response.json()
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as err:
            raise WorkerUnavailable(f"the room's media worker does not answer ({type(err).__name__})") from None

    # --- what the front asks (rooms.RoomLike) ----------------------------------------------
    async def answer(self, role: str, sdp: str) -> str:
        status, body = await self._call("POST", f"/offer/{role}", {"sdp": sdp}, OFFER_TIMEOUT_S)
        if status == 400:
            raise signaling.OfferError(body.get("error", "unusable offer"))
        if status == 503:
            raise asyncio.TimeoutError
        if status != 200:
            raise WorkerUnavailable(body.get("error", f"worker HTTP {status}"))
        self._roles.add(role)
        self.ever_joined = True
        self.last_activity = time.monotonic()
        return body["sdp"]

    async def hang_up(self, role: str) -> None:
        if self._running:
            await self._call("POST", f"/leave/{role}")
        self._roles.discard(role)
        self.last_activity = time.monotonic()

    async def set_recording(self, action: str, audio: bool) -> tuple[bool, list[str]]:
        status, body = await self._call("POST", "/recording", {"action": action, "audio": audio})
        if status == 400:
            raise ValueError(body.get("error", "bad recording action"))
        if status != 200:
            raise OSError(body.get("error", f"worker HTTP {status}"))
        self._recording = body["recording"]
        self._settings.resume_recording = audio if body["recording"] else None   # for a worker started after this one
        return body["recording"], body["files"]

    def resume_recording(self, audio: bool) -> None:
        self._settings.resume_recording = audio

    async def refresh(self) -> None:
        if self.closed or not self._running:
            return
        if self._gone():   # nobody is connected until it is back
            self._forget_worker()
            return
        try:
            status, state = await self._call("GET", "/state")
        except WorkerUnavailable:
            if await self._lost():
                self._forget_worker()
            return
        if status == 200:
            self._roles = set(state["sessions"])
            self.last_activity = time.monotonic() - state["idle_s"]
            self.ever_joined = self.ever_joined or state["ever_joined"]
            self._recording = state["recording"]
            self.metrics_snapshot = state["metrics"]

    async def close(self, ended: bool = True) -> None:
        if self.closed:
            return
        if self._starting is not None:
            with contextlib.suppress(Exception):
                await self._starting
        if self._running:
            with contextlib.suppress(WorkerUnavailable):
                await self.refresh()
                await self._call("POST", "/close", {"ended": ended})
        self.closed = True
        await self._stop()
        self._forget_worker()
        if self._http is not None:
            await self._http.close()


def worker_app(settings: WorkerSettings, done: asyncio.Event) -> web.Application:
    """The worker's HTTP API over one `Room` (module docstring)."""
    metrics = Metrics()
    rtc = ice.rtc_configuration(settings.ice_servers, settings.turn_username, settings.turn_password)
    media = MediaSettings(rtc, Path(settings.recordings), settings.frame_reports)
    recover(media.recordings / settings.room_id)   # what a dead worker of this room left
    room = Room(settings.room_id, metrics, masker_factory(settings.masker), media)
    if settings.resume_recording is not None:
        room.resume_recording(settings.resume_recording)
    room.engine.preload()   # this process exists for this room: its models load while the pages connect

    @web.middleware
    async def keyed(request: web.Request, handler: Any) -> web.StreamResponse:
        if not secrets.compare_digest(request.headers.get(KEY_HEADER, ""), settings.key):
            raise web.HTTPForbidden(reason="not the front")
        return await handler(request)

    def role_of(request: web.Request) -> str:
        role = request.match_info["role"]
        if role not in ROLES:
            raise web.HTTPNotFound(reason="no such role")
        return role

    async def offer(request: web.Request) -> web.Response:
        body = await request.json()
        try:
            sdp = await room.answer(role_of(request), body["sdp"])
        except signaling.OfferError as err:
            return web.json_response({"error": str(err)}, status=400)
        except asyncio.TimeoutError:
            return web.json_response({"error": "could not gather connection candidates in time"}, status=503)
        return web.json_response({"sdp": sdp})

    async def leave(request: web.Request) -> web.Response:
        await room.hang_up(role_of(request))
        return web.json_response({"left": request.match_info["role"]})

    async def recording(request: web.Request) -> web.Response:
        body = await request.json()
        try:
            active, files = await room.set_recording(body.get("action"), bool(body.get("audio")))
        except ValueError as err:
            return web.json_response({"error": str(err)}, status=400)
        except OSError as err:
            return web.json_response({"error": f"cannot record: {err}"}, status=500)
        return web.json_response({"recording": active, "files": files})

    async def state(request: web.Request) -> web.Response:
        return web.json_response({**room.state(), "metrics": metrics.snapshot()})

    async def close(request: web.Request) -> web.Response:
        body = await request.json()
        await room.close(ended=body.get("ended", True) is not False)
        done.set()
        return web.json_response({"closed": room.id})

    app = web.Application(middlewares=[keyed])
    app.router.add_post("/offer/{role}", offer)
    app.router.add_post("/leave/{role}", leave)
    app.router.add_post("/recording", recording)
    app.router.add_get("/state", state)
    app.router.add_post("/close", close)

    async def on_shutdown(app: web.Application) -> None:   # the front is gone: the pages will reconnect to its next start
        await room.close(ended=False)

    app.on_shutdown.append(on_shutdown)
    count_errors(app, metrics)
    return app


async def serve_worker(settings: WorkerSettings, host: str = "127.0.0.1") -> tuple[web.AppRunner, int, asyncio.Event]:
    """Serve the worker's API on `host` in this event loop; (runner, port, the event /close sets)."""
    if settings.loopback:
        ice.enable_loopback_candidate()
    jitter.install()
    done = asyncio.Event()
    runner = web.AppRunner(worker_app(settings, done), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1], done  # type: ignore[union-attr]


async def _run(settings: WorkerSettings) -> None:
    runner, port, done = await serve_worker(settings)
    print(json.dumps({"port": port}), flush=True)
    loop = asyncio.get_running_loop()
    stdin = sys.stdin.fileno()

    def front_gone() -> None:  # EOF: the front's end of the pipe closed
        if not os.read(stdin, 4096):
            loop.remove_reader(stdin)
            done.set()

    loop.add_reader(stdin, front_gone)
    await done.wait()
    await runner.cleanup()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(name)s: %(message)s")
    for chatty in ("aioice", "aiortc"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    settings = WorkerSettings(**json.loads(sys.stdin.readline()))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(settings))


if __name__ == "__main__":
    main()
