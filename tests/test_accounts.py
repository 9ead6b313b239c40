"""Who may open a consultation: clinicians' accounts (`dmask users`), sign-in, sessions,
CSRF, the first-account link, and room tokens that never travel in a URL."""
from __future__ import annotations

import base64
import json
import logging
import re
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDictProxy

from conftest import DMASK, assert_refused
from server import accounts
from server.accounts import AccountError, Accounts
from server.app import RELAY, ROOM_HEADER, ServeConfig, _PathOnlyAccessLogger, create_app
from server.auth import CSRF_HEADER, SESSION_COOKIE, WRONG_LOGIN
from tests.test_server_protocol import CLINICIAN, Server, relay_server, run

NAME, PASSWORD = CLINICIAN


# --- passwords -----------------------------------------------------------------------

def test_scrypt_known_answer_and_stored_form() -> None:
    # RFC 7914, section 12: scrypt("pleaseletmein", "SodiumChloride", N=16384, r=8, p=1, dkLen=64).
    expected = bytes.fromhex(
        "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2"
        "d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887")
    assert accounts.scrypt("pleaseletmein", b"SodiumChloride", n=16384, r=8, p=1, length=64) == expected
    stored = f"scrypt$16384$8$1${base64.b64encode(b'SodiumChloride').decode()}${base64.b64encode(expected).decode()}"
    assert accounts.verify_password("pleaseletmein", stored)
    assert not accounts.verify_password("pleaseletmein!", stored)
    assert not accounts.verify_password("pleaseletmein", stored.replace("scrypt$", "md5$"))
    assert not accounts.verify_password("pleaseletmein", "garbage")

    first, second = accounts.hash_password(PASSWORD), accounts.hash_password(PASSWORD)
    scheme, n, r, p, salt, key = first.split("$")
    assert (scheme, int(n), int(r), int(p)) == ("scrypt", 2**15, 8, 1)
    assert len(base64.b64decode(salt)) == 16 and len(base64.b64decode(key)) == 32
    assert first != second  # a fresh salt each time
    assert accounts.verify_password(PASSWORD, first) and accounts.verify_password(PASSWORD, second)
    assert not accounts.verify_password(PASSWORD.upper(), first)


def test_sessions_expire_idle_and_absolute_and_end_with_their_account(tmp_path: Path) -> None:
    store = Accounts.open(tmp_path)
    store.add(NAME, PASSWORD)
    now = time.time()
    session_id, session = store.start_session(NAME, now)
    assert store.session(session_id, now + 60) == session
    assert session_id not in (tmp_path / "dmask.sqlite3").read_bytes().decode("latin-1")  # only its digest is kept
    assert store.session(session_id, now + accounts.SESSION_IDLE_S + 61) is None  # idle too long
    used, _ = store.start_session(NAME, now)
    at = now
    while at + 11 * 3600 < now + accounts.SESSION_MAX_S:  # used every 11 hours: never idle ...
        at += 11 * 3600
        assert store.session(used, at) is not None
    assert store.session(used, now + accounts.SESSION_MAX_S + 1) is None  # ... but 7 days at most
    kept, _ = store.start_session(NAME, now)
    store.remove(NAME)
    assert store.session(kept, now + 1) is None
    with pytest.raises(AccountError):
        store.remove(NAME)


# --- dmask users ---------------------------------------------------------------------

def _users(tmp_path: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([*DMASK, "users", *args, "--data", str(tmp_path / "data")], input=stdin,
                          capture_output=True, text=True, timeout=120)


def test_users_command_adds_lists_removes_and_unlocks(tmp_path: Path) -> None:
    added = _users(tmp_path, "add", NAME, "--password-stdin", stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    store = Accounts.open(tmp_path / "data")
    assert accounts.verify_password(PASSWORD, store.stored_password(NAME))
    assert _users(tmp_path, "add", "dr-two", "--password-stdin", stdin="another long password\n").returncode == 0
    listed = _users(tmp_path, "list")
    assert listed.returncode == 0 and [line.split()[0] for line in listed.stdout.splitlines()] == ["dr-test", "dr-two"]

    for _ in range(accounts.MAX_FAILURES):
        store.failed(NAME, time.time())
    assert store.locked_for(NAME, time.time()) > 14 * 60
    assert "locked for 15 min" in _users(tmp_path, "list").stdout
    assert _users(tmp_path, "unlock", NAME).returncode == 0
    assert store.locked_for(NAME, time.time()) == 0

    assert _users(tmp_path, "remove", "dr-two").returncode == 0
    assert [line.split()[0] for line in _users(tmp_path, "list").stdout.splitlines()] == [NAME]


@pytest.mark.parametrize(("args", "stdin", "reason"), [
    (("add", NAME, "--password-stdin"), "too short\n", "at least 12 characters"),
    (("add", "no spaces please", "--password-stdin"), PASSWORD + "\n", "a name is"),
    (("add", NAME), "", "no terminal"),                       # no terminal to type it on
    (("add", "taken", "--password-stdin"), PASSWORD + "\n", "exists already"),
    (("remove", "nobody"), "", "no account named 'nobody'"),
    (("unlock", "nobody"), "", "no account named 'nobody'"),
])
def test_users_command_refuses_bad_input(tmp_path: Path, args: tuple[str, ...], stdin: str, reason: str) -> None:
    Accounts.open(tmp_path / "data").add("taken", PASSWORD)
    assert_refused(_users(tmp_path, *args, stdin=stdin), reason)


# --- signing in ----------------------------------------------------------------------

def _cookie(headers: CIMultiDictProxy[str], name: str) -> str:
    """The one Set-Cookie header for cookie `name`."""
    found = [value for key, value in headers.items() if key.lower() == "set-cookie" and value.startswith(f"{name}=")]
    assert len(found) == 1, headers
    return found[0]


async def _login(server: Server, name: str, password: str, **kwargs: object) -> tuple[int, dict, str]:
    async with aiohttp.ClientSession() as http:
        async with http.post(server.base + "/api/login", json={"name": name, "password": password}, **kwargs) as response:
            return response.status, await response.json(), response.headers.get("Retry-After", "")


def test_login_sets_a_strict_httponly_session_and_one_message_for_every_failure(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with relay_server(tmp_path) as server:
            server.relay.auth.accounts.add(NAME, PASSWORD)
            assert await _login(server, NAME, "wrong password!!") == (401, {"error": WRONG_LOGIN}, "")
            assert await _login(server, "nobody-here", PASSWORD) == (401, {"error": WRONG_LOGIN}, "")
            async with aiohttp.ClientSession() as http:
                async with http.post(server.base + "/api/login", json={"name": NAME, "password": PASSWORD}) as response:
                    assert response.status == 200
                    body = await response.json()
                    cookie = _cookie(response.headers, SESSION_COOKIE)
            assert body["name"] == NAME and len(body["csrf"]) >= 43
            flags = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")[1:]}
            assert "httponly" in flags and flags["samesite"] == "SameSite=Strict" and flags["path"] == "Path=/"
            assert "secure" not in flags  # plain http on localhost: a Secure cookie would never come back
            assert int(flags["max-age"].split("=")[1]) == accounts.SESSION_MAX_S

            await server.sign_in()
            assert (await server.request("GET", "/api/session"))[1] == {"signed_in": True, "name": NAME, "csrf": server.csrf}
            status, _ = await server.request("POST", "/api/logout")
            assert status == 200
            assert (await server.request("GET", "/api/session"))[1] == {"signed_in": False, "accounts": True}
            assert (await server.request("POST", "/api/rooms"))[0] == 401  # the session is gone

            for body in ("not json", '["a"]', '{"name": "a"}', '{"name": 1, "password": "x"}'):
                status, answer = await server.request("POST", "/api/login", data=body, signed_in=False)
                assert status == 400 and "error" in answer

    run(scenario())


def test_the_session_cookie_is_secure_under_https(tmp_path: Path) -> None:
    async def scenario() -> str:
        config = ServeConfig(https=True, data=tmp_path / "data", recordings=tmp_path / "recordings")
        async with relay_server(tmp_path, config=config) as server:
            server.relay.auth.accounts.add(NAME, PASSWORD)
            async with aiohttp.ClientSession() as http:
                async with http.post(server.base + "/api/login", json={"name": NAME, "password": PASSWORD}) as response:
                    assert response.status == 200
                    return _cookie(response.headers, SESSION_COOKIE)

    assert "Secure" in [part.strip() for part in run(scenario()).split(";")]


def test_login_is_rate_limited_per_address_and_an_account_locks(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with relay_server(tmp_path) as server:
            server.relay.auth.accounts.add(NAME, PASSWORD)
            limit = server.relay.auth.logins
            assert limit.attempts == 10 and limit.window_s == 60
            limit.attempts = 100  # the lockout first, then the rate limit
            for _ in range(accounts.MAX_FAILURES):
                assert (await _login(server, NAME, "wrong password!!"))[0] == 401
            status, body, retry = await _login(server, NAME, PASSWORD)  # the right one, too late
            assert status == 423 and "locked" in body["error"] and "dmask users unlock" in body["error"]
            assert 14 * 60 <= int(retry) <= 15 * 60
            # A name without an account locks the same way: the answers tell no names.
            for _ in range(accounts.MAX_FAILURES):
                assert (await _login(server, "nobody-here", "wrong password!!"))[0] == 401
            status, _, _ = await _login(server, "nobody-here", PASSWORD)
            assert status == 423

            server.relay.auth.accounts.unlock(NAME)  # dmask users unlock (tested above) does this
            limit.attempts = 10
            status, body, retry = await _login(server, NAME, PASSWORD)  # the 13th attempt this minute
            assert status == 429 and "too many attempts" in body["error"] and 1 <= int(retry) <= 60
            assert (await _login(server, NAME, PASSWORD, headers={"X-Forwarded-For": "10.1.2.3"}))[0] == 429
            limit.window_s = 0.5  # let the minute pass
            time.sleep(0.6)
            assert (await _login(server, NAME, PASSWORD))[0] == 200

    run(scenario())


def test_csrf_token_and_origin_are_checked_on_state_changing_calls(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with relay_server(tmp_path) as server:
            await server.sign_in()
            csrf = server.csrf
            for headers in ({CSRF_HEADER: ""}, {CSRF_HEADER: "wrong" + csrf[5:]}):
                status, body = await server.request("POST", "/api/rooms", headers=headers)
                assert status == 403 and CSRF_HEADER in body["error"]
            server.csrf = ""
            status, body = await server.request("POST", "/api/rooms")  # no header at all
            assert status == 403 and CSRF_HEADER in body["error"]
            status, body = await server.request("POST", "/api/logout")
            assert status == 403
            server.csrf = csrf
            status, body = await server.request("POST", "/api/rooms", headers={"Origin": "https://evil.example"})
            assert status == 403 and "evil.example" in body["error"]
            status, body = await server.request("POST", "/api/login", signed_in=False, headers={"Origin": "null"},
                                                json={"name": NAME, "password": PASSWORD})
            assert status == 403  # sign-in from another site, too
            status, body = await server.request("POST", "/api/rooms", headers={"Origin": server.base})
            assert status == 201
            room, tokens = body["id"], body["doctor"].split("#")[1]
            status, body = await server.request("DELETE", f"/api/rooms/{room}", token=tokens, headers={CSRF_HEADER: "x"})
            assert status == 403
            status, body = await server.request("DELETE", f"/api/rooms/{room}", token=tokens)
            assert status == 200

    run(scenario())


def test_clinician_only_routes_refuse_without_a_session_and_work_with_one(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with relay_server(tmp_path) as server:
            status, body = await server.request("POST", "/api/rooms")
            assert status == 401 and "sign in" in body["error"]
            room, tokens = await server.room()
            doctor = tokens["doctor"]
            routes = [("POST", f"/api/rooms/{room}/recording", {"json": {"action": "stop"}}),
                      ("GET", f"/api/rooms/{room}/recordings", {}),
                      ("GET", f"/api/rooms/{room}/recordings/x.mp4", {}),
                      ("DELETE", f"/api/rooms/{room}", {})]
            for method, path, kwargs in routes:
                status, body = await server.request(method, path, token=doctor, signed_in=False, **kwargs)
                assert status == 401 and "sign in" in body["error"], (method, path)
            expected = [200, 200, 404, 200]  # (no such recording: past the session and the token)
            for (method, path, kwargs), want in zip(routes, expected, strict=True):
                status, body = await server.request(method, path, token=doctor, **kwargs)
                assert status == want, (method, path, body)
            # The patient's side needs no account.
            status, _ = await server.request("POST", "/api/rooms", signed_in=False)
            assert status == 401

    run(scenario())


def test_room_tokens_travel_in_a_header_or_cookie_never_the_query_nor_the_log(tmp_path: Path,
                                                                              caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> tuple[str, str]:
        config = ServeConfig(recordings=tmp_path / "recordings", data=tmp_path / "data")
        app = create_app(config)
        runner = web.AppRunner(app, access_log_class=_PathOnlyAccessLogger)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server = Server(f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}", app[RELAY])  # type: ignore[union-attr]
        try:
            room, tokens = await server.room()
            patient = tokens["patient"]
            status, body = await server.request("GET", f"/api/rooms/{room}/patient/ice?token={patient}")
            assert status == 403 and "links have changed" in body["error"]
            status, body = await server.request("GET", f"/room/{room}/patient?token={patient}")
            assert status == 403 and "no longer" in body  # the page of an old link says why
            assert (await server.request("GET", f"/api/rooms/{room}/patient/ice", token=patient))[0] == 200

            # The page trades its header for a cookie (its event stream cannot send headers).
            async with aiohttp.ClientSession() as http:
                async with http.post(f"{server.base}/api/rooms/{room}/patient/session",
                                     headers={ROOM_HEADER: patient}) as response:
                    assert response.status == 200
                    cookie = _cookie(response.headers, "dmask_room_patient")
            parts = [part.strip() for part in cookie.split(";")]
            assert parts[0] == f"dmask_room_patient={patient}"
            assert {"HttpOnly", "SameSite=Strict", f"Path=/api/rooms/{room}/"} <= set(parts)
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(cookie_jar=jar) as http:
                async with http.post(f"{server.base}/api/rooms/{room}/patient/session",
                                     headers={ROOM_HEADER: patient}) as response:
                    assert response.status == 200
                async with http.get(f"{server.base}/api/rooms/{room}/patient/ice") as response:
                    assert response.status == 200  # GET: the cookie opens the patient's side
                async with http.get(f"{server.base}/api/rooms/{room}/doctor/ice") as response:
                    assert response.status == 403  # ... not the doctor's
                async with http.post(f"{server.base}/api/rooms/{room}/patient/leave") as response:
                    assert response.status == 403  # state-changing calls need the header
                async with http.post(f"{server.base}/api/rooms/{room}/patient/session") as response:
                    assert response.status == 403  # the cookie cannot renew itself
            status, _ = await server.request("DELETE", f"/api/rooms/{room}", token=tokens["doctor"])
            assert status == 200
            status, _ = await server.request("GET", f"/api/rooms/{room}/patient/ice", token=patient)
            assert status == 404  # the link ended with its room
            status, _ = await server.request("GET", f"/room/{room}/patient")
            assert status == 404
        finally:
            await runner.cleanup()
        return patient, tokens["doctor"]

    with caplog.at_level(logging.INFO, logger="aiohttp.access"):
        patient, doctor = run(scenario())
    access = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert len(access) >= 10 and any("/ice" in line for line in access)
    assert not any(patient in line or doctor in line or "token" in line for line in access)


# --- the first account ---------------------------------------------------------------

def _post_json(url: str, body: dict) -> tuple[int, dict, str]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response), response.headers.get("Set-Cookie", "")
    except urllib.error.HTTPError as err:
        return err.code, json.load(err), ""


def test_first_run_prints_a_setup_link_that_works_once(tmp_path: Path) -> None:
    from test_server_browser import _free_port

    port = _free_port()
    server = subprocess.Popen([*DMASK, "serve", "--single-process", "--port", str(port)], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stderr is not None
        line = ""
        deadline = time.monotonic() + 60
        while "setup#code=" not in line and time.monotonic() < deadline:
            line = server.stderr.readline()
            assert line or server.poll() is None, "dmask serve ended"
        found = re.search(r"(http://\S+)/setup#code=(\S+)", line)
        assert found and "dmask users add" in line, line
        base, code = found.groups()
        assert base == f"http://127.0.0.1:{port}"
        for _ in range(100):  # until it answers
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        with urllib.request.urlopen(base + "/api/session") as response:
            assert json.load(response) == {"signed_in": False, "accounts": False}
        with urllib.request.urlopen(base + "/setup") as response:
            assert response.status == 200 and "first clinician account" in response.read().decode()

        assert _post_json(base + "/api/setup", {"code": "guess", "name": NAME, "password": PASSWORD})[0] == 403
        status, body, _ = _post_json(base + "/api/setup", {"code": code, "name": NAME, "password": "short"})
        assert status == 400 and "12 characters" in body["error"]
        status, body, cookie = _post_json(base + "/api/setup", {"code": code, "name": NAME, "password": PASSWORD})
        assert status == 201 and body["name"] == NAME and cookie.startswith(f"{SESSION_COOKIE}=")
        status, body, _ = _post_json(base + "/api/setup", {"code": code, "name": "dr-two", "password": PASSWORD})
        assert status == 409 and "exists already" in body["error"]  # once only
        status, body, _ = _post_json(base + "/api/login", {"name": NAME, "password": PASSWORD})
        assert status == 200
    finally:
        server.terminate()
        server.communicate(timeout=20)
    assert [u.name for u in Accounts.open(tmp_path / "dmask-data").users()] == [NAME]


def test_no_setup_link_once_an_account_exists(tmp_path: Path) -> None:
    async def scenario() -> None:
        Accounts.open(tmp_path / "data").add(NAME, PASSWORD)
        async with relay_server(tmp_path) as server:
            assert server.relay.auth.setup_code is None
            status, body = await server.request("POST", "/api/setup", json={"code": "", "name": "x", "password": PASSWORD})
            assert status == 409

    run(scenario())
