"""The relay's web application: pages, the room API, signaling, and `serve()`.

Routes (API errors are JSON `{"error": "..."}`; [C]: a signed-in clinician only, 401
otherwise, see `auth.py` for sign-in, sessions and CSRF):

    GET  /                                   start page: create a consultation (-> /login when signed out)
    GET  /room/{id}/patient|doctor           the two pages; the link is `/room/{id}/{role}#TOKEN`
    POST /api/rooms                          [C] -> 201 {id, patient, doctor} (links, shown only here)    429: too many rooms
    POST /api/rooms/{id}/{role}/session      the token for a cookie (the page's event stream, downloads)
    GET  /api/rooms/{id}/{role}/ice          the page's ICE servers (fresh TURN credentials) and policy
    GET  /api/rooms/{id}/{role}/events       server-sent events: {"type": "reconnect"} when the room's worker was lost
    POST /api/rooms/{id}/{role}/offer        {type: "offer", sdp} -> {type: "answer", sdp}
                                             403 wrong token, 404 unknown room, 400 bad body, 408 body too slow, 503 full
    POST /api/rooms/{id}/{role}/leave        that side hangs up
    DELETE /api/rooms/{id}                   [C] the doctor ends the consultation
    POST /api/rooms/{id}/recording           [C] doctor: {action: "start"|"stop", audio: bool}
    GET  /api/rooms/{id}/recordings          [C] doctor: [{name, size, url}]
    GET  /api/rooms/{id}/recordings/{name}   [C] doctor: download
    GET  /healthz, /metrics                  liveness, Prometheus text

A room's token travels in the link's fragment, which browsers never send to a server nor
put in a Referer; the page moves it to the `X-Room-Token` header of its API calls. The
event stream and download links (which cannot set headers) use the cookie
`dmask_room_{role}` instead, made by `.../{role}/session` from the header: HttpOnly,
SameSite=Strict, Path=/api/rooms/{id}/, and read on GET requests only, so every
state-changing call still needs the header. Its value is the token itself: it opens
exactly what the token opens, for as long as the room lives, so a value derived from it
would add a server key and nothing else. One cookie per role: a doctor who opens both
links in one browser keeps both sides working. A `?token=` (the old links) is refused
with 403. Tokens never reach the logs: the access log prints paths without their query.

This process is the front: with `ServeConfig.room_workers` (as `dmask serve` runs) each
room's media runs in a worker process of its own (`worker.py`), else in this process.
The rooms live in the data directory's database (`store.py`): a restarted front
recovers what a crash left of the recordings, registers its open rooms again (their
links keep working; a worker starts at a room's first offer) and the pages, retrying,
come back by themselves.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from . import ice, jitter, signaling, tls
from .accounts import Accounts
from .auth import CLINICIAN, Auth, clinician_only, own_origin
from .db import open_db
from .media import MaskerFactory, default_masker
from .metrics import Metrics, count_errors
from .recording import NAME_RE, recover
from .rooms import ROLES, LimitReached, Limits, MediaSettings, Room, RoomLike, RoomRegistry
from .store import RoomStore
from .worker import WorkerRoom, WorkerSettings, WorkerUnavailable

log = logging.getLogger(__name__)

def _static_dir() -> Path:
    """The pages: the source tree's static/ (run from a checkout or an editable install),
    else the copy a regular install puts under <prefix>/share/dmask/static."""
    source = Path(__file__).resolve().parents[1] / "static"
    return source if source.is_dir() else Path(sys.prefix) / "share" / "dmask" / "static"


STATIC_DIR = _static_dir()
ROOM_HEADER = "X-Room-Token"
LINKS_CHANGED = ("links have changed: the token now follows '#' in the link (/room/ID/ROLE#TOKEN) and travels in the "
                 f"{ROOM_HEADER} header; ask for a new link")
MAX_BODY = 64 * 1024
#: A request body not complete after this long is refused (408): aiohttp itself waits for
#: a body that a client announced and never sends (a slow or lying client) for ever.
BODY_TIMEOUT_S = 10.0
#: A connection without a complete request (headers) for this long is closed: aiohttp's
#: keep-alive timer, which also drops a client that sends its headers byte by byte.
IDLE_CONNECTION_S = 30.0
#: Event streams per consultation (its two pages, and a few reloads not yet timed out),
#: and how often an idle one sends a comment so proxies keep it open.
MAX_EVENT_STREAMS = 8
EVENT_KEEPALIVE_S = 15.0
EVENT_RETRY_MS = 1000   # how soon a page's event stream tries again once lost (the relay restarting)

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",  # nothing about a page leaves with its requests
    "X-Content-Type-Options": "nosniff",
    "Permissions-Policy": "camera=(self), microphone=(self)",
    "Cache-Control": "no-store",
}


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    https: bool = False
    tls_dir: Path = tls.DEFAULT_DIR
    hostnames: list[str] = field(default_factory=list)   # extra names for the certificate
    ice_servers: list[str] = field(default_factory=list)  # stun:/turn: URLs; none by default
    turn_username: str | None = None   # the relay's own, for its turn: --ice-servers
    turn_password: str | None = None
    page_ice: ice.PageIce = field(default_factory=ice.PageIce)  # what the pages use
    recordings: Path = Path("recordings")
    data: Path = Path("dmask-data")  # accounts, sessions and rooms (`db.py`), kept across restarts
    limits: Limits = field(default_factory=Limits)
    frame_reports: bool = False  # per-frame timing reports to the doctor (the latency harness)
    #: Each room's media in a worker process of its own ("module:factory" its masker), or
    #: in this process with create_app's masker_factory (tests that look inside a room).
    room_workers: bool = False
    worker_masker: str = "server.media:default_masker"
    cluster: str | None = None   # a Ray cluster's address: each room's worker a Ray actor there (`cluster.py`)


class _PathOnlyAccessLogger(AbstractAccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info('%s "%s %s" %s %.1f ms', request.remote, request.method, request.path, response.status, time * 1e3)


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


@web.middleware
async def _headers_and_json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if not request.path.startswith("/api/"):
            raise
        response = _error(exc.status, exc.reason)
    except OSError:
        if not request.path.startswith("/static/"):
            raise
        # aiohttp's static route stats the name as given: one longer than the file system
        # takes (ENAMETOOLONG) would be a 500.
        raise web.HTTPNotFound() from None
    except Exception:
        if not request.path.startswith("/api/"):
            raise
        log.exception("%s %s failed", request.method, request.path)  # the path only: no token
        response = _error(500, "internal error (see the relay's log)")
    response.headers.update(SECURITY_HEADERS)
    return response


class Relay:
    """Handlers over one RoomRegistry."""

    def __init__(self, config: ServeConfig, masker_factory: MaskerFactory) -> None:
        self.config = config
        self.metrics = Metrics()
        self.db = open_db(config.data)  # accounts, sessions and rooms: one connection
        self.auth = Auth(Accounts(self.db), config.https)
        rtc = ice.rtc_configuration(config.ice_servers, config.turn_username, config.turn_password)
        media = MediaSettings(rtc, config.recordings, config.frame_reports)

        def local_room(room_id: str, digests: dict[str, str], restored: bool) -> RoomLike:
            return Room(room_id, self.metrics, masker_factory, media, digests)

        worker_class: type[WorkerRoom] = WorkerRoom
        if config.cluster:
            from . import cluster  # Ray only with --cluster

            cluster.connect(config.cluster)
            worker_class = cluster.ClusterRoom

        def worker_room(room_id: str, digests: dict[str, str], restored: bool) -> RoomLike:
            settings = WorkerSettings(
                room_id, str(config.recordings.resolve()), config.worker_masker, config.ice_servers,
                config.turn_username, config.turn_password, config.frame_reports, ice.loopback_candidate_enabled())
            room = worker_class(room_id, settings, self.metrics, digests, start=not restored)
            room.on_lost = lambda: self._tell_pages(room_id, {"type": "reconnect"})
            return room

        self._pages: dict[str, set[asyncio.Queue[dict[str, Any] | None]]] = {}   # room -> open event streams

        self.rooms = RoomRegistry(config.limits, worker_room if config.room_workers or config.cluster else local_room,
                                  RoomStore(self.db))

    def restore(self) -> None:
        """After a restart: make playable what a crash left of the recordings, then register
        the stored open rooms again."""
        if self.config.recordings.is_dir():
            for directory in sorted(self.config.recordings.iterdir()):
                if directory.is_dir():
                    recover(directory)
        self.rooms.restore()

    # --- helpers ---------------------------------------------------------------------
    def _room(self, request: web.Request) -> RoomLike:
        room = self.rooms.get(request.match_info["room"])
        if room is None:
            raise web.HTTPNotFound(reason="no such consultation (it may have ended)")
        return room

    def _authorize(self, request: web.Request, room: RoomLike, role: str) -> None:
        """The room's `role` token in the header, or (GET only) in the role's cookie."""
        if "token" in request.query:
            raise web.HTTPForbidden(reason=LINKS_CHANGED)
        token = request.headers.get(ROOM_HEADER)
        if token is None and request.method == "GET":
            token = request.cookies.get(room_cookie(role))
        if room.role_for(token) != role:
            raise web.HTTPForbidden(reason=f"this link does not open the {role}'s side")

    @staticmethod
    async def _json(request: web.Request) -> dict[str, Any]:
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise web.HTTPBadRequest(reason=f"body larger than {MAX_BODY // 1024} KiB")
        try:
            body = await asyncio.wait_for(request.read(), BODY_TIMEOUT_S)  # bounded by the app's client_max_size
        except web.HTTPRequestEntityTooLarge:
            raise web.HTTPBadRequest(reason=f"body larger than {MAX_BODY // 1024} KiB") from None
        except asyncio.TimeoutError:
            raise web.HTTPRequestTimeout(reason=f"body not received within {BODY_TIMEOUT_S:g} s") from None
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested deeper than the parser goes
            raise web.HTTPBadRequest(reason="body is not JSON") from None
        if not isinstance(data, dict):
            raise web.HTTPBadRequest(reason="body is not a JSON object")
        return data

    # --- pages -----------------------------------------------------------------------
    async def index(self, request: web.Request) -> web.StreamResponse:
        if request[CLINICIAN] is None:
            raise web.HTTPFound("/login")
        return web.FileResponse(STATIC_DIR / "index.html")

    async def login_page(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC_DIR / "login.html")

    async def setup_page(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC_DIR / "setup.html")

    async def page(self, request: web.Request) -> web.StreamResponse:
        """A side's page: static, its token stays in the fragment (the page checks it)."""
        room = self.rooms.get(request.match_info["room"])
        if room is None:
            return web.FileResponse(STATIC_DIR / "ended.html", status=404)
        if "token" in request.query:   # an old link: its token was sent, and is now refused
            return web.FileResponse(STATIC_DIR / "forbidden.html", status=403)
        return web.FileResponse(STATIC_DIR / f"{request.match_info['role']}.html")

    # --- API -------------------------------------------------------------------------
    @clinician_only
    async def create_room(self, request: web.Request) -> web.Response:
        try:
            room, tokens = self.rooms.create()
        except LimitReached as err:
            return _error(err.status, str(err), **{"Retry-After": "60"})
        origin = own_origin(request)
        links = {role: f"{origin}/room/{room.id}/{role}#{tokens[role]}" for role in ROLES}
        return web.json_response({"id": room.id, **links}, status=201)

    async def room_session(self, request: web.Request) -> web.Response:
        """The header's token as the role's cookie, for what cannot send the header."""
        role = request.match_info["role"]
        room = self._room(request)
        self._authorize(request, room, role)
        response = web.json_response({"cookie": room_cookie(role)})
        response.set_cookie(room_cookie(role), request.headers[ROOM_HEADER], path=f"/api/rooms/{room.id}/",
                            httponly=True, samesite="Strict", secure=self.config.https)
        return response

    async def page_ice(self, request: web.Request) -> web.Response:
        role = request.match_info["role"]
        room = self._room(request)
        self._authorize(request, room, role)
        return web.json_response(self.config.page_ice.for_room(room.id))

    def _tell_pages(self, room_id: str, message: dict[str, Any]) -> None:
        for queue in self._pages.get(room_id, ()):
            queue.put_nowait(message)

    async def events(self, request: web.Request) -> web.StreamResponse:
        """A page's event stream: the front's word to it outside its media connection, which
        may be what was lost (the room's worker on a dead process or node)."""
        role = request.match_info["role"]
        room = self._room(request)
        self._authorize(request, room, role)
        streams = self._pages.setdefault(room.id, set())
        if len(streams) >= MAX_EVENT_STREAMS:
            return _error(429, "too many event streams for this consultation")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", **SECURITY_HEADERS})
        await response.prepare(request)
        await response.write(f"retry: {EVENT_RETRY_MS}\n\n".encode())
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=16)
        streams.add(queue)
        try:
            while True:
                try:
                    message = await asyncio.wait_for(queue.get(), EVENT_KEEPALIVE_S)
                except asyncio.TimeoutError:
                    if self.rooms.get(room.id) is None:   # the consultation has ended
                        break
                    await response.write(b": keepalive\n\n")
                    continue
                if message is None:   # the room or the server is closing
                    break
                await response.write(f"data: {json.dumps(message)}\n\n".encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            streams.discard(queue)
            if not streams:
                self._pages.pop(room.id, None)
        return response

    def close_event_streams(self) -> None:
        for streams in self._pages.values():
            for queue in streams:
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(None)

    async def offer(self, request: web.Request) -> web.Response:
        role = request.match_info["role"]
        room = self._room(request)
        self._authorize(request, room, role)
        body = await self._json(request)
        if body.get("type") != "offer" or not isinstance(body.get("sdp"), str):
            raise web.HTTPBadRequest(reason='expected {"type": "offer", "sdp": "..."}')
        try:
            self.rooms.check_peer_capacity(room, role)
            sdp = await room.answer(role, body["sdp"])
        except LimitReached as err:
            return _error(err.status, str(err), **{"Retry-After": "30"})
        except signaling.OfferError as err:
            raise web.HTTPBadRequest(reason=str(err)) from None
        except asyncio.TimeoutError:
            return _error(503, "could not gather connection candidates in time")
        except WorkerUnavailable as err:
            return _error(503, str(err), **{"Retry-After": "2"})
        return web.json_response({"type": "answer", "sdp": sdp})

    async def leave(self, request: web.Request) -> web.Response:
        role = request.match_info["role"]
        room = self._room(request)
        self._authorize(request, room, role)
        try:
            await room.hang_up(role)
        except WorkerUnavailable as err:
            return _error(503, str(err))
        return web.json_response({"left": role})

    @clinician_only
    async def end_room(self, request: web.Request) -> web.Response:
        room = self._room(request)
        self._authorize(request, room, "doctor")
        await self.rooms.close_room(room, "ended by the doctor")
        return web.json_response({"ended": room.id})

    @clinician_only
    async def recording(self, request: web.Request) -> web.Response:
        room = self._room(request)
        self._authorize(request, room, "doctor")
        body = await self._json(request)
        try:
            active, names = await room.set_recording(body.get("action"), bool(body.get("audio")))
        except ValueError as err:
            raise web.HTTPBadRequest(reason=str(err)) from None
        except (OSError, WorkerUnavailable) as err:
            return _error(500, f"cannot record: {err}")
        self.rooms.recorded(room, active, bool(body.get("audio")))
        return web.json_response({"recording": active, "files": names})

    @clinician_only
    async def list_recordings(self, request: web.Request) -> web.Response:
        """The room's files; their URLs work with the doctor's cookie (`room_session`)."""
        room = self._room(request)
        self._authorize(request, room, "doctor")
        directory = self.config.recordings / room.id
        files = sorted(p for p in directory.glob("*") if NAME_RE.match(p.name)) if directory.is_dir() else []
        return web.json_response([
            {"name": p.name, "size": p.stat().st_size, "url": f"/api/rooms/{room.id}/recordings/{p.name}"}
            for p in files
        ])

    @clinician_only
    async def download(self, request: web.Request) -> web.StreamResponse:
        room = self._room(request)
        self._authorize(request, room, "doctor")
        name = request.match_info["name"]
        path = self.config.recordings / room.id / name
        if not NAME_RE.match(name) or not path.is_file():
            raise web.HTTPNotFound(reason="no such recording")
        return web.FileResponse(path, headers={"Content-Disposition": f'attachment; filename="{name}"'})

    # --- observability ---------------------------------------------------------------
    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "rooms": len(self.rooms.rooms), "peers": self.rooms.peers})

    async def metrics_text(self, request: web.Request) -> web.Response:
        rooms = list(self.rooms.rooms.values())
        for room in rooms:
            await room.refresh()
        workers = [room for room in rooms if isinstance(room, WorkerRoom)]
        nodes = Counter(room.node for room in workers if room.running and room.node)
        text = self.metrics.render({
            "dmask_rooms": ("Open consultation rooms.", len(rooms)),
            "dmask_sessions": ("Connected peers (patients and doctors).", self.rooms.peers),
            "dmask_recordings": ("Rooms being recorded.", sum(room.recording for room in rooms)),
            "dmask_room_workers": ("Room workers running.", sum(room.running for room in workers)),
            "dmask_room_worker_restarts": ("Room workers started again after exiting.", sum(room.restarts for room in workers)),
            "dmask_rooms_on_node": ("Rooms whose worker runs on each cluster node.",
                                    [(f'{{node="{node}"}}', float(count)) for node, count in sorted(nodes.items())]),
        }, [room.metrics_snapshot for room in workers if room.metrics_snapshot is not None])
        return web.Response(text=text, content_type="text/plain", charset="utf-8", headers={"X-Prometheus-Format": "0.0.4"})


RELAY = web.AppKey("relay", Relay)


def room_cookie(role: str) -> str:
    return f"dmask_room_{role}"


def create_app(config: ServeConfig | None = None, masker_factory: MaskerFactory = default_masker) -> web.Application:
    """The aiohttp application; rooms are closed when it shuts down."""
    config = config or ServeConfig()
    if ice.is_loopback(config.host):
        ice.enable_loopback_candidate()
    jitter.install()
    relay = Relay(config, masker_factory)
    app = web.Application(client_max_size=MAX_BODY, middlewares=[_headers_and_json_errors, relay.auth.guard])
    app[RELAY] = relay
    role = "{role:patient|doctor}"
    app.router.add_get("/", relay.index)
    app.router.add_get("/login", relay.login_page)
    app.router.add_get("/setup", relay.setup_page)
    app.router.add_get("/api/session", relay.auth.session_info)
    app.router.add_post("/api/login", relay.auth.login)
    app.router.add_post("/api/logout", relay.auth.logout)
    app.router.add_post("/api/setup", relay.auth.setup)
    app.router.add_get(f"/room/{{room}}/{role}", relay.page)
    app.router.add_post("/api/rooms", relay.create_room)
    app.router.add_post(f"/api/rooms/{{room}}/{role}/session", relay.room_session)
    app.router.add_get(f"/api/rooms/{{room}}/{role}/ice", relay.page_ice)
    app.router.add_get(f"/api/rooms/{{room}}/{role}/events", relay.events)
    app.router.add_post(f"/api/rooms/{{room}}/{role}/offer", relay.offer)
    app.router.add_post(f"/api/rooms/{{room}}/{role}/leave", relay.leave)
    app.router.add_delete("/api/rooms/{room}", relay.end_room)
    app.router.add_post("/api/rooms/{room}/recording", relay.recording)
    app.router.add_get("/api/rooms/{room}/recordings", relay.list_recordings)
    app.router.add_get("/api/rooms/{room}/recordings/{name}", relay.download)
    app.router.add_get("/healthz", relay.healthz)
    app.router.add_get("/metrics", relay.metrics_text)
    app.router.add_static("/static/", STATIC_DIR)

    async def on_startup(app: web.Application) -> None:
        relay.restore()
        relay.rooms.start()

    async def on_shutdown(app: web.Application) -> None:
        relay.close_event_streams()
        await relay.rooms.close()

    async def on_cleanup(app: web.Application) -> None:
        relay.db.close()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    count_errors(app, relay.metrics)
    return app


def serve(config: ServeConfig) -> None:
    """Run the relay until interrupted."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for chatty in ("aioice", "aiortc"):  # per-packet and per-check lines
        logging.getLogger(chatty).setLevel(logging.WARNING)
    ssl_context = tls.server_context(config.tls_dir, [config.host, *config.hostnames]) if config.https else None
    scheme = "https" if ssl_context else "http"
    shown = f"[{config.host}]" if ":" in config.host else config.host
    app = create_app(config)
    base = f"{scheme}://{shown}:{config.port}"
    print(f"dmask serve: open {base}/ to start a consultation (Ctrl-C stops)", flush=True)
    code = app[RELAY].auth.setup_code
    if code is not None:
        print(f"dmask serve: no clinician account yet: create the first at {base}/setup#code={code} "
              f"(this link works once, while this relay runs; or: dmask users add NAME --data {config.data})",
              file=sys.stderr, flush=True)
    web.run_app(
        app, host=config.host, port=config.port, ssl_context=ssl_context,
        access_log_class=_PathOnlyAccessLogger, print=None, keepalive_timeout=IDLE_CONNECTION_S,
    )
