"""Who may do what on the relay: clinicians' sign-in, sessions, CSRF and the first account.

Routes (JSON in and out; errors `{"error": "..."}`):

    GET  /login, /setup              the sign-in page; the first-account page (`/setup#code=...`)
    GET  /api/session                {signed_in, name, csrf} or {signed_in: false, accounts: bool}
    POST /api/login                  {name, password} -> {name, csrf} and the session cookie
                                     401 wrong name or password (one message for both), 423 locked,
                                     429 too many attempts from this address (Retry-After)
    POST /api/logout                 ends the session
    POST /api/setup                  {code, name, password}: the first account, while there is none

`guard` runs before every handler: a state-changing request (POST, PUT, PATCH, DELETE)
whose Origin header names another site is refused (403); one carrying a live session
cookie must echo the session's CSRF token in `X-CSRF-Token` (403), sign-in and setup
aside (they have no session yet; SameSite=Strict and the Origin check cover them). It
puts the session, if any, on the request for `clinician_only` handlers (401 without).

The session cookie `dmask_session` is HttpOnly, SameSite=Strict, Path=/, Secure under
`--https`, and lasts at most `accounts.SESSION_MAX_S`.
"""
from __future__ import annotations

import asyncio
import functools
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from . import accounts
from .accounts import AccountError, Accounts, Session

SESSION_COOKIE = "dmask_session"
CSRF_HEADER = "X-CSRF-Token"
CLINICIAN: web.RequestKey[Session | None] = web.RequestKey("clinician")  # the request's session, or None
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
NO_CSRF = frozenset({"/api/login", "/api/setup"})
LOGIN_ATTEMPTS, LOGIN_WINDOW_S = 10, 60.0   # per client address
MAX_TRACKED_ADDRESSES = 10_000
WRONG_LOGIN = "wrong name or password"


def json_error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


def own_origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


class RateLimit:
    """At most `attempts` per `window_s` per key (a sliding window)."""

    def __init__(self, attempts: int, window_s: float) -> None:
        self.attempts, self.window_s = attempts, window_s
        self._seen: dict[str, deque[float]] = {}

    def hit(self, key: str, now: float) -> float:
        """Count an attempt; 0 if allowed, else the seconds until one is."""
        times = self._seen.pop(key, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if len(self._seen) >= MAX_TRACKED_ADDRESSES:
            self._seen.pop(next(iter(self._seen)))
        self._seen[key] = times
        if len(times) >= self.attempts:
            return times[0] + self.window_s - now
        times.append(now)
        return 0.0


Handler = TypeVar("Handler", bound=Callable[..., Awaitable[web.StreamResponse]])


def clinician_only(handler: Handler) -> Handler:
    """A handler (method) that answers signed-in clinicians only: 401 for anyone else."""

    @functools.wraps(handler)
    async def wrapped(self: Any, request: web.Request) -> web.StreamResponse:
        if request.get(CLINICIAN) is None:
            return json_error(401, "sign in as a clinician first (/login)")
        return await handler(self, request)

    return wrapped  # type: ignore[return-value]


class Auth:
    """The sign-in side of one relay over its accounts."""

    def __init__(self, accounts_: Accounts, https: bool) -> None:
        self.accounts = accounts_
        self.https = https
        self.logins = RateLimit(LOGIN_ATTEMPTS, LOGIN_WINDOW_S)
        #: The one-time first-account code while there is no account (`dmask serve` prints
        #: `/setup#code=...`); None once used, or when accounts exist.
        self.setup_code: str | None = None if accounts_.has_users() else secrets.token_urlsafe(24)

    # --- every request ---------------------------------------------------------------
    @web.middleware
    async def guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        state_changing = request.method in STATE_CHANGING
        origin = request.headers.get("Origin")
        if state_changing and origin is not None and origin != own_origin(request):
            return json_error(403, f"cross-site request refused (Origin {origin} is not this relay)")
        session: Session | None = None
        session_id = request.cookies.get(SESSION_COOKIE)
        if session_id:
            session = self.accounts.session(session_id, time.time())
        if state_changing and session is not None and request.path not in NO_CSRF:
            sent = request.headers.get(CSRF_HEADER, "")
            if not secrets.compare_digest(sent.encode(), session.csrf.encode()):
                return json_error(403, f"missing or wrong {CSRF_HEADER} header (reload the page)")
        request[CLINICIAN] = session
        return await handler(request)

    def _set_session(self, response: web.Response, session_id: str) -> None:
        response.set_cookie(SESSION_COOKIE, session_id, max_age=int(accounts.SESSION_MAX_S), path="/",
                            httponly=True, samesite="Strict", secure=self.https)

    # --- routes ----------------------------------------------------------------------
    async def session_info(self, request: web.Request) -> web.Response:
        session = request[CLINICIAN]
        if session is None:
            return web.json_response({"signed_in": False, "accounts": self.accounts.has_users()})
        return web.json_response({"signed_in": True, "name": session.user, "csrf": session.csrf})

    @staticmethod
    async def _credentials(request: web.Request, *fields: str) -> dict[str, str]:
        try:
            body = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(reason="body is not JSON") from None
        if not isinstance(body, dict) or not all(isinstance(body.get(f), str) for f in fields):
            raise web.HTTPBadRequest(reason=f"expected a JSON object with {', '.join(fields)} (strings)")
        return body

    def _too_many(self, request: web.Request, now: float) -> web.Response | None:
        wait = self.logins.hit(request.remote or "", now)
        if wait <= 0:
            return None
        return json_error(429, f"too many attempts from this address: try again in {wait:.0f} s",
                          **{"Retry-After": str(max(1, round(wait)))})

    async def login(self, request: web.Request) -> web.Response:
        now = time.time()
        refused = self._too_many(request, now)
        if refused is not None:
            return refused
        body = await self._credentials(request, "name", "password")
        name, password = body["name"], body["password"][:accounts.MAX_PASSWORD + 1]
        locked = self.accounts.locked_for(name, now)
        if locked > 0:
            return json_error(423, f"this account is locked after {accounts.MAX_FAILURES} wrong passwords: try again in "
                                   f"{locked / 60:.0f} min, or ask an administrator (dmask users unlock NAME)",
                              **{"Retry-After": str(round(locked))})
        stored = self.accounts.stored_password(name)
        ok = await asyncio.get_running_loop().run_in_executor(None, accounts.verify_password, password, stored)
        if not ok or stored is accounts.DUMMY:
            self.accounts.failed(name, now)
            return json_error(401, WRONG_LOGIN)
        self.accounts.succeeded(name)
        return self._signed_in(name, now, 200)

    def _signed_in(self, name: str, now: float, status: int) -> web.Response:
        session_id, session = self.accounts.start_session(name, now)
        response = web.json_response({"name": name, "csrf": session.csrf}, status=status)
        self._set_session(response, session_id)
        return response

    async def logout(self, request: web.Request) -> web.Response:
        session_id = request.cookies.get(SESSION_COOKIE)
        if session_id:
            self.accounts.end_session(session_id)
        response = web.json_response({"signed_in": False})
        response.del_cookie(SESSION_COOKIE, path="/")
        return response

    async def setup(self, request: web.Request) -> web.Response:
        """The first account, with the code `dmask serve` printed; it signs its maker in."""
        now = time.time()
        refused = self._too_many(request, now)
        if refused is not None:
            return refused
        body = await self._credentials(request, "code", "name", "password")
        if self.setup_code is None or self.accounts.has_users():
            self.setup_code = None
            return json_error(409, "an account exists already: sign in at /login (more with: dmask users add NAME)")
        if not secrets.compare_digest(body["code"].encode(), self.setup_code.encode()):
            return json_error(403, "this setup link is not valid: use the one dmask serve printed at start")
        try:
            accounts.check_name(body["name"])
            accounts.check_password(body["password"])
        except AccountError as err:
            raise web.HTTPBadRequest(reason=str(err)) from None
        stored = await asyncio.get_running_loop().run_in_executor(None, accounts.hash_password, body["password"])
        try:
            self.accounts.add_first(body["name"], stored)
        except AccountError as err:
            return json_error(409, str(err))
        self.setup_code = None
        return self._signed_in(body["name"], now, 201)
