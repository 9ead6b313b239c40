"""Clinicians' accounts and their signed-in sessions, in the relay's SQLite file (`db.py`).

Only a signed-in clinician may create, end or record consultations (`auth.py` guards the
routes); the patient needs no account. Accounts are managed with `dmask users`, or the
first one in the browser through the one-time setup link `dmask serve` prints.

- Passwords: scrypt (RFC 7914, memory-hard: N=2**15, r=8, p=1 needs 32 MiB and about
  0.1 s), a 16-byte random salt, stored with its parameters as
  `scrypt$N$r$p$salt$key` (base64), checked with `hmac.compare_digest`. The web side
  hashes off its event loop.
- Sessions: the cookie holds a random 256-bit id; the database keeps only its SHA-256,
  so a copy of the file signs nobody in. A session ends after `SESSION_IDLE_S` without a
  request, `SESSION_MAX_S` after sign-in, at sign-out, or when its account is removed.
  Each has its own CSRF token, which state-changing requests must echo in a header.
- Lockout: `MAX_FAILURES` wrong passwords in a row lock an account for `LOCK_S`
  (`dmask users unlock NAME` lifts it). A name with no account is "locked" the same way
  in memory, so the answers never tell which names exist.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from .db import open_db

SCRYPT_N, SCRYPT_R, SCRYPT_P, SALT_BYTES, KEY_BYTES = 2**15, 8, 1, 16, 32
SCRYPT_MAXMEM = 64 * 2**20          # 128 * N * r = 32 MiB, plus OpenSSL's overhead
MIN_PASSWORD, MAX_PASSWORD = 12, 1024  # characters
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
SESSION_IDLE_S = 12 * 3600.0
SESSION_MAX_S = 7 * 24 * 3600.0
TOUCH_EVERY_S = 60.0                # a session's last use is written at most this often
MAX_FAILURES = 5
LOCK_S = 15 * 60.0
MAX_UNKNOWN_NAMES = 10_000          # failed names without an account remembered at most

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    password TEXT NOT NULL,           -- scrypt$N$r$p$salt$key
    created REAL NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0,
    locked_until REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS sessions (
    id_sha256 TEXT PRIMARY KEY,       -- the cookie's id is never stored
    user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    created REAL NOT NULL,
    last_seen REAL NOT NULL
);
"""


class AccountError(ValueError):
    """A name or password that cannot be used, or an account that does (not) exist."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def scrypt(password: str, salt: bytes, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P,
           length: int = KEY_BYTES) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=SCRYPT_MAXMEM, dklen=length)


def hash_password(password: str) -> str:
    """The stored form of `password`: scheme, parameters, salt and key."""
    salt = secrets.token_bytes(SALT_BYTES)
    key = scrypt(password, salt)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` hashes to `stored` (with the parameters stored there)."""
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        expected = base64.b64decode(key, validate=True)
        if scheme != "scrypt":
            return False
        actual = scrypt(password, base64.b64decode(salt, validate=True), int(n), int(r), int(p), len(expected))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


#: What an unknown name is checked against, so it costs the same time as a known one.
DUMMY = hash_password(secrets.token_urlsafe(16))


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise AccountError("a name is 1-64 letters, digits and . _ @ - (starting with a letter or digit)")
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"a password has at most {MAX_PASSWORD} characters")
    return password


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass(frozen=True)
class User:
    name: str
    created: float
    locked_until: float


@dataclass(frozen=True)
class Session:
    user: str
    csrf: str


class Accounts:
    """The users and sessions tables of one data directory."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.db = connection
        self.db.executescript(SCHEMA)
        self._unknown: dict[str, tuple[int, float]] = {}  # name without account -> (failures, locked until)

    @classmethod
    def open(cls, data_dir: Path) -> Accounts:
        return cls(open_db(data_dir))

    # --- accounts (`dmask users`, the setup link) --------------------------------------
    def add(self, name: str, password: str) -> None:
        """A new account; AccountError for a bad name or password, or a name taken."""
        check_name(name)
        stored = hash_password(check_password(password))
        try:
            self.db.execute("INSERT INTO users (name, password, created) VALUES (?, ?, ?)", (name, stored, time.time()))
        except sqlite3.IntegrityError:
            raise AccountError(f"an account named {name!r} exists already") from None

    def add_first(self, name: str, stored: str) -> None:
        """The first account (its password already `hash_password`ed), only while there is
        none (the setup link)."""
        check_name(name)
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            if self.has_users():
                raise AccountError("an account exists already: sign in instead")
            self.db.execute("INSERT INTO users (name, password, created) VALUES (?, ?, ?)", (name, stored, time.time()))

    def remove(self, name: str) -> None:
        """Delete an account and end its sessions."""
        if self.db.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount == 0:
            raise AccountError(f"no account named {name!r}")

    def unlock(self, name: str) -> None:
        if self.db.execute("UPDATE users SET failures = 0, locked_until = 0 WHERE name = ?", (name,)).rowcount == 0:
            raise AccountError(f"no account named {name!r}")

    def users(self) -> list[User]:
        rows = self.db.execute("SELECT name, created, locked_until FROM users ORDER BY name")
        return [User(*row) for row in rows]

    def has_users(self) -> bool:
        return self.db.execute("SELECT 1 FROM users LIMIT 1").fetchone() is not None

    # --- signing in ------------------------------------------------------------------
    def locked_for(self, name: str, now: float) -> float:
        """Seconds until `name` may try again (0: now)."""
        row = self.db.execute("SELECT locked_until FROM users WHERE name = ?", (name,)).fetchone()
        until = row[0] if row else self._unknown.get(name, (0, 0.0))[1]
        return max(0.0, until - now)

    def stored_password(self, name: str) -> str:
        """What `name`'s password is checked against: a dummy for a name without account."""
        row = self.db.execute("SELECT password FROM users WHERE name = ?", (name,)).fetchone()
        return row[0] if row else DUMMY

    def failed(self, name: str, now: float) -> None:
        """A wrong password for `name`: the `MAX_FAILURES`th in a row locks it for `LOCK_S`."""
        locks = "failures + 1 >= ?"
        updated = self.db.execute(
            f"UPDATE users SET failures = CASE WHEN {locks} THEN 0 ELSE failures + 1 END, "
            f"locked_until = CASE WHEN {locks} THEN ? ELSE locked_until END WHERE name = ?",
            (MAX_FAILURES, MAX_FAILURES, now + LOCK_S, name)).rowcount
        if updated:
            return
        failures = self._unknown.pop(name, (0, 0.0))[0] + 1
        if len(self._unknown) >= MAX_UNKNOWN_NAMES:
            self._unknown.pop(next(iter(self._unknown)))
        self._unknown[name] = (0, now + LOCK_S) if failures >= MAX_FAILURES else (failures, 0.0)

    def succeeded(self, name: str) -> None:
        self.db.execute("UPDATE users SET failures = 0, locked_until = 0 WHERE name = ?", (name,))

    # --- sessions --------------------------------------------------------------------
    def start_session(self, name: str, now: float) -> tuple[str, Session]:
        """A new session for `name`: (the cookie's id, the session)."""
        session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self.db:
            self.db.execute("DELETE FROM sessions WHERE last_seen < ? OR created < ?",
                            (now - SESSION_IDLE_S, now - SESSION_MAX_S))
            self.db.execute("INSERT INTO sessions (id_sha256, user, csrf, created, last_seen) VALUES (?, ?, ?, ?, ?)",
                            (_digest(session_id), name, csrf, now, now))
        return session_id, Session(name, csrf)

    def session(self, session_id: str, now: float) -> Session | None:
        """The live session with this cookie id, or None (unknown, expired, account gone)."""
        digest = _digest(session_id)
        row = self.db.execute("SELECT user, csrf, created, last_seen FROM sessions WHERE id_sha256 = ?",
                              (digest,)).fetchone()
        if row is None:
            return None
        user, csrf, created, last_seen = row
        if now - last_seen > SESSION_IDLE_S or now - created > SESSION_MAX_S:
            self.db.execute("DELETE FROM sessions WHERE id_sha256 = ?", (digest,))
            return None
        if now - last_seen > TOUCH_EVERY_S:
            self.db.execute("UPDATE sessions SET last_seen = ? WHERE id_sha256 = ?", (now, digest))
        return Session(user, csrf)

    def end_session(self, session_id: str) -> None:
        self.db.execute("DELETE FROM sessions WHERE id_sha256 = ?", (_digest(session_id),))
