"""Shared helpers of the hostile-input tests (tests/test_hostile_*.py).

How a request carries a room's token is in ONE place, `auth()`: today the `?token=`
query parameter. Room creation is in `create_room()`.
"""
from __future__ import annotations

import asyncio
import contextlib
import gc
import http.client
import json
import math
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from hypothesis import strategies as st

from server.app import RELAY, ROOM_HEADER, Relay, ServeConfig, create_app
from server.auth import CSRF_HEADER
from server.media import MaskerFactory, default_masker
from server.rooms import Limits

ROLES = ("patient", "doctor")
CLINICIAN = ("hostile-tests", "a password for the hostile tests")


def auth(token: str) -> dict[str, Any]:
    """The aiohttp request arguments that present a room token (the only place that knows how)."""
    return {"headers": {ROOM_HEADER: token}}


def raw_auth(path: str, token: str) -> tuple[str, list[str]]:
    """`auth(token)` for a hand-written request: the path to send and its extra header lines."""
    options = auth(token)
    if options.get("params"):
        path += ("&" if "?" in path else "?") + urlencode(options["params"])
    return path, [f"{name}: {value}" for name, value in options.get("headers", {}).items()]


class Served:
    """A relay on a loopback port: its base URL and its handlers' state."""

    def __init__(self, base: str, relay: Relay) -> None:
        self.base, self.relay = base, relay
        self.recordings = relay.config.recordings

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any, dict[str, str]]:
        """(status, JSON body or text, headers); `path` is sent as is (no re-quoting)."""
        async with aiohttp.ClientSession() as http:
            async with http.request(method, aiohttp.client.URL(self.base + path, encoded=True), **kwargs) as response:
                raw = await response.read()
                body: Any = raw.decode("utf-8", "replace")
                if "json" in response.headers.get("Content-Type", ""):
                    body = json.loads(raw)
                return response.status, body, dict(response.headers)

    async def create_room(self) -> tuple[str, dict[str, str]]:
        """A new room, made by a signed-in clinician: its id and each role's token."""
        accounts = self.relay.auth.accounts
        if CLINICIAN[0] not in {user.name for user in accounts.users()}:
            accounts.add(*CLINICIAN)
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.post(self.base + "/api/login", json={"name": CLINICIAN[0], "password": CLINICIAN[1]}) as response:
                csrf = (await response.json())["csrf"]
            async with http.post(self.base + "/api/rooms", headers={CSRF_HEADER: csrf}) as response:
                assert response.status == 201, await response.text()
                body = await response.json()
        return body["id"], {role: body[role].split("#")[1] for role in ROLES}

    async def healthz_s(self) -> float:
        """Seconds /healthz takes to answer 200."""
        start = time.monotonic()
        status, body, _ = await self.request("GET", "/healthz")
        assert status == 200 and body["status"] == "ok", body
        return time.monotonic() - start


@contextlib.asynccontextmanager
async def relay_server(tmp_path: Path, masker_factory: MaskerFactory = default_masker,
                       runner_options: dict[str, Any] | None = None, room_workers: bool = False,
                       **limits: float) -> AsyncIterator[Served]:
    """The relay of `create_app`; rooms' media in this process unless `room_workers` (as `dmask serve`)."""
    config = ServeConfig(recordings=tmp_path / "recordings", data=tmp_path / "data", limits=Limits(**limits),
                         room_workers=room_workers)
    app = create_app(config, masker_factory)
    runner = web.AppRunner(app, **(runner_options or {}))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield Served(f"http://127.0.0.1:{port}", app[RELAY])
    finally:
        await runner.cleanup()


class Background:
    """A relay serving from a thread; `call(coro)` runs a coroutine on its loop."""

    def __init__(self, tmp_path: Path, masker_factory: Any = None, **runner_options: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._context = relay_server(tmp_path, masker_factory or (lambda: None), runner_options)
        self.served: Served = self.call(self._context.__aenter__())
        self.port = int(self.served.base.rsplit(":", 1)[1])
        self.room, self.tokens = self.call(self.served.create_room())

    def call(self, coro: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.call(self._context.__aexit__(None, None, None))
        self.call(self.loop.shutdown_default_executor())  # as asyncio.run() does: its threads end
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, token: str | None = None) -> tuple[int, bytes, str]:
        """(status, body, Content-Type); `token` presented as the pages do (`auth`)."""
        headers = dict(headers or {})
        if token is not None:
            path, header_lines = raw_auth(path, token)
            headers.update(line.split(": ", 1) for line in header_lines)  # type: ignore[misc]
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read(), response.getheader("Content-Type", "")
        finally:
            connection.close()

    def healthy(self) -> bool:
        status, body, _ = self.request("GET", "/healthz")
        return status == 200 and json.loads(body)["status"] == "ok"


def nothing_recorded(served: Served) -> bool:
    """No file at all under the recordings directory."""
    return not served.recordings.exists() or not any(p.is_file() for p in served.recordings.rglob("*"))


async def threads_back_to(baseline: int, timeout: float = 10.0) -> int:
    """Wait until at most `baseline` threads run (closed pools and peers end theirs); the count."""
    deadline = time.monotonic() + timeout
    while True:
        gc.collect()
        count = threading.active_count()
        if count <= baseline or time.monotonic() > deadline:
            return count
        await asyncio.sleep(0.1)


# --- JSON a hostile page may send -----------------------------------------------------------

#: Numbers that break naive code: float overflow, NaN, ints beyond float, bools (ints in Python).
ODD_NUMBERS = st.sampled_from([
    math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324, -0.0, 10**400, -(10**400), 2**63, True, False,
])
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | ODD_NUMBERS | st.text(max_size=30)
JSON_VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=12,
)


def to_json(value: Any) -> str:
    """As Python writes it: NaN and Infinity included (a hostile peer need not be a browser)."""
    return json.dumps(value)
