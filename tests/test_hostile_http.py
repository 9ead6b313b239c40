"""Hostile HTTP: every route of server/app.py with fuzzed bodies, paths, query strings and
headers, lying and slow clients. Never a 5xx, a JSON `error` for every refused API
request, the relay still answering /healthz, and nothing written to the recordings.

The relay runs on a thread of its own (its own event loop) so that Hypothesis' examples,
and the raw sockets of the slow clients, are plain blocking code.
"""
from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import server.app
from hostile import JSON_VALUES, Background, nothing_recorded, raw_auth, to_json
from server.app import MAX_BODY

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Background]:
    background = Background(tmp_path)
    yield background
    assert background.healthy()
    assert nothing_recorded(background.served)
    background.close()


def assert_refused_well(status: int, body: bytes, ctype: str, path: str, method: str = "GET") -> None:
    """Not a server error; a refused API request says why in JSON (HEAD: no body)."""
    assert status < 500, (status, path, body[:200])
    if len(path) > 8190:  # aiohttp's own limit on the request line: its plain-text 400, before any route
        assert status in (400, 414), status
        return
    if status >= 400 and path.startswith("/api/") and method != "HEAD":
        assert "json" in ctype, (status, path, ctype, body[:200])
        error = json.loads(body)["error"]
        assert isinstance(error, str) and error, body


# --- bodies ------------------------------------------------------------------------------------

BODIES = st.one_of(
    st.binary(max_size=512),
    JSON_VALUES.map(lambda v: to_json(v).encode()),
    st.fixed_dictionaries({"type": st.just("offer") | JSON_VALUES, "sdp": st.text(max_size=300) | JSON_VALUES},
                          optional={"action": JSON_VALUES, "audio": JSON_VALUES}).map(lambda v: to_json(v).encode()),
    st.fixed_dictionaries({}, optional={"action": st.sampled_from(["stop", "Start", "", "start\x00"]) | JSON_VALUES,
                                        "audio": JSON_VALUES}).map(lambda v: to_json(v).encode()),
    st.integers(1, 60_000).map(lambda n: b"[" * n),                      # nested deeper than json recurses
    st.integers(1, 30_000).map(lambda n: b'{"a":' * n),
    st.sampled_from([b"NaN", b'{"type": "offer", "sdp": NaN}', b"\xff\xfe{}", b"\x00" * 100, "{\"sdp\": \"\u202e\"}".encode()]),
)
CONTENT_TYPES = st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded",
                                 "multipart/form-data; boundary=x", "application/json; charset=utf-16", ""])
WHO = st.sampled_from(["patient", "doctor", "wrong", "none"])


def _token(relay: Background, who: str) -> str | None:
    return relay.tokens.get(who, "x" * 43 if who == "wrong" else None)


@FUZZ
@given(route=st.sampled_from(["offer", "leave", "recording", "rooms"]), role=st.sampled_from(["patient", "doctor"]),
       who=WHO, body=BODIES, ctype=CONTENT_TYPES)
def test_any_body_to_any_post_route(relay: Background, route: str, role: str, who: str, body: bytes, ctype: str) -> None:
    with_token = _token(relay, who)
    if route == "recording":
        with_recording_start = body.replace(b" ", b"").find(b'"action":"start"') >= 0
        assume(not (with_recording_start and who == "doctor"))  # a well-formed start records, as it should
    path = {"offer": f"/api/rooms/{relay.room}/{role}/offer", "leave": f"/api/rooms/{relay.room}/{role}/leave",
            "recording": f"/api/rooms/{relay.room}/recording", "rooms": "/api/rooms"}[route]
    status, answer, answer_type = relay.request("POST", path, body, {"Content-Type": ctype} if ctype else {}, with_token)
    assert_refused_well(status, answer, answer_type, path)
    if route == "offer" and who == role:
        assert status in (400, 503), (status, answer[:200])  # nothing here is a usable offer
    assert relay.served.relay.rooms.peers == 0


# --- paths, query strings, methods ---------------------------------------------------------------

SEGMENTS = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["..", "../..", "..%2F..%2Fetc%2Fpasswd", "%00", "a%00b", "%2e%2e", "\u0000", "con", "." * 300,
                     "x" * 5000, "%", "%zz", "patient%2Fdoctor", "\ud7ff\ue000", "*"]),
)
GET_ROUTES = ["/room/{room}/{role}", "/api/rooms/{room}/{role}/ice", "/api/rooms/{room}/recordings",
              "/api/rooms/{room}/recordings/{name}", "/static/{name}", "/", "/healthz", "/metrics", "/{name}"]


def _segment(text: str, raw: bool) -> str:
    return quote(text, safe="/.%" if raw else "")


@FUZZ
@given(route=st.sampled_from(GET_ROUTES), room=SEGMENTS, role=st.sampled_from(["patient", "doctor"]) | SEGMENTS,
       name=SEGMENTS, raw=st.booleans(), query=st.lists(st.tuples(st.text(max_size=20), st.text(max_size=60)), max_size=4),
       who=WHO, real_room=st.booleans(), method=st.sampled_from(["GET", "GET", "DELETE", "PUT", "PATCH", "OPTIONS", "HEAD"]))
def test_any_path_query_and_method(relay: Background, route: str, room: str, role: str, name: str, raw: bool,
                                   query: list[tuple[str, str]], who: str, real_room: bool, method: str) -> None:
    room_segment = relay.room if real_room else _segment(room, raw)
    path = route.format(room=room_segment, role=_segment(role, raw), name=_segment(name, raw))
    assume(not (method == "DELETE" and real_room and who == "doctor"))  # the doctor may end the room
    if query:
        path += "?" + urlencode(query)
    status, body, ctype = relay.request(method, path, token=_token(relay, who))
    assert_refused_well(status, body, ctype, path, method)
    if "/recordings/" in path or path.startswith("/static/"):
        assert status in (400, 401, 403, 404, 405), (path, status)  # no file of anyone's leaves
    assert relay.served.relay.rooms.get(relay.room) is not None


# --- hand-made: headers, sizes, lies ----------------------------------------------------------------

def _raw(port: int, data: bytes, read_timeout: float = 10.0) -> bytes:
    """Send `data` on a fresh connection; the relay's first response (up to the end of its
    body), or what came before it closed the connection or `read_timeout`."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as sock:
        sock.sendall(data)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
                head, found, body = answer.partition(b"\r\n\r\n")
                length = re.search(rb"(?im)^content-length: *(\d+)", head)
                if found and (length and len(body) >= int(length.group(1)) or body.endswith(b"0\r\n\r\n")):
                    break
        except (TimeoutError, ConnectionResetError):
            pass
        return answer


def _post_offer(relay: Background) -> bytes:
    """The start of a hand-written POST of the patient's offer, with its token: headers follow."""
    path, lines = raw_auth(f"/api/rooms/{relay.room}/patient/offer", relay.tokens["patient"])
    return "".join(f"{line}\r\n" for line in [f"POST {path} HTTP/1.1", "Host: x", *lines]).encode()


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith((b"HTTP/1.0 ", b"HTTP/1.1 ")) else 0


def test_oversized_and_lying_requests_get_a_4xx(relay: Background) -> None:
    post = _post_offer(relay)
    huge = b"x" * (MAX_BODY + 1)
    cases: list[tuple[str, bytes, set[int]]] = [
        ("header value of 100 KB", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n", {400, 431}),
        ("500 headers", b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(500)) + b"\r\n", {400, 431}),
        ("request line of 100 KB", b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", {400, 414, 431}),
        ("not HTTP", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(200) + b"\r\n\r\n", {400}),
        ("body over 64 KiB", post + f"Content-Length: {len(huge)}\r\n\r\n".encode() + huge, {400}),
        ("Content-Length says 64 KiB + 1, body short", post + f"Content-Length: {MAX_BODY + 1}\r\n\r\n{{}}".encode(), {400}),
        ("Content-Length smaller than the body",
         post + f"Content-Length: 2\r\nConnection: close\r\n\r\n{{}}garbage".encode(), {400}),
        ("negative Content-Length", post + f"Content-Length: -5\r\n\r\n{{}}".encode(), {400}),
        ("two Content-Lengths", post + f"Content-Length: 2\r\nContent-Length: 9\r\n\r\n{{}}".encode(), {400}),
        ("chunked body over 64 KiB", post + f"Transfer-Encoding: chunked\r\n\r\n".encode()
         + b"".join(b"4000\r\n" + b"x" * 0x4000 + b"\r\n" for _ in range(5)) + b"0\r\n\r\n", {400}),
        ("bad chunk sizes", post + f"Transfer-Encoding: chunked\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n".encode(), {400}),
        ("nested 60 000 deep", post + f"Content-Length: 60000\r\n\r\n".encode() + b"[" * 60000, {400}),
    ]
    for name, data, expected in cases:
        answer = _raw(relay.port, data)
        assert _status(answer) in expected, (name, answer[:300])
        head, _, body = answer.partition(b"\r\n\r\n")
        if _status(answer) == 400 and b"/api/" in data.split(b"\r\n")[0] and b"application/json" in head:
            assert json.loads(body.split(b"\r\n")[0] if b"chunked" in head else body)["error"]
        assert relay.healthy(), name
    assert relay.served.relay.rooms.peers == 0


def test_a_body_that_never_comes_is_refused_in_time(relay: Background, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server.app, "BODY_TIMEOUT_S", 1.0)
    post = _post_offer(relay)
    start = time.monotonic()
    answer = _raw(relay.port, post + f"Content-Length: 1000\r\n\r\n{{\"type\":".encode(), 5.0)
    assert _status(answer) == 408 and b"not received within" in answer, answer[:300]
    assert time.monotonic() - start < 3.0


# --- slow clients -------------------------------------------------------------------------------------

def test_slow_and_idle_clients_do_not_stop_the_relay_and_are_dropped(tmp_path: Path) -> None:
    """200 idle connections and a client sending its headers a byte every 0.2 s: /healthz stays
    fast meanwhile, and the keep-alive timer `serve()` sets (here 2 s) drops them all."""
    relay = Background(tmp_path, keepalive_timeout=2.0)
    try:
        idle = [socket.create_connection(("127.0.0.1", relay.port)) for _ in range(200)]
        slow = socket.create_connection(("127.0.0.1", relay.port))
        request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 1000 + b"\r\n\r\n"
        latencies, dropped_after = [], None
        start = time.monotonic()
        for i, byte in enumerate(request):
            try:
                slow.send(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                dropped_after = time.monotonic() - start
                break
            if i % 5 == 0:
                latencies.append(relay.call(relay.served.healthz_s()))
            time.sleep(0.2)
            if time.monotonic() - start > 6:
                break
        assert max(latencies) < 0.5, latencies
        assert dropped_after is not None and dropped_after < 4.0, dropped_after
        for sock in idle:  # closed by the relay: reading gives end-of-file
            sock.settimeout(2.0)
            assert sock.recv(10) == b""
            sock.close()
        slow.close()
        assert relay.healthy()
    finally:
        relay.close()


def test_serve_sets_the_idle_connection_limit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(server.app.web, "run_app", lambda app, **options: seen.update(options))
    server.app.serve(server.app.ServeConfig(recordings=tmp_path / "recordings", data=tmp_path / "data"))
    assert seen["keepalive_timeout"] == server.app.IDLE_CONNECTION_S <= 60
