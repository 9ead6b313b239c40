"""The rooms kept across restarts: their links, activity and recording state in SQLite.

A restarted relay registers every open room again from here (`RoomRegistry.restore`),
so the links already sent keep working and a recording the restart interrupted resumes.
The links' tokens are never stored: only their SHA-256 digests, which `rooms.role_for`
compares with the digest of the token a page presents; a copy of the database therefore
opens no consultation. Times are wall-clock seconds (the monotonic clock does not
survive a restart).
"""
from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass

SCHEMA = """
CREATE TABLE IF NOT EXISTS rooms (
    id              TEXT PRIMARY KEY,
    patient_digest  TEXT NOT NULL,   -- SHA-256 hex of the patient's token
    doctor_digest   TEXT NOT NULL,
    created         REAL NOT NULL,
    last_activity   REAL NOT NULL,
    ever_joined     INTEGER NOT NULL DEFAULT 0,
    recording       INTEGER NOT NULL DEFAULT 0,   -- the doctor's last word: recording or not
    recording_audio INTEGER NOT NULL DEFAULT 0,
    closed          REAL                          -- when it ended; NULL while open
)
"""


def token_digest(token: str) -> str:
    """What is stored and compared for a link's token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class StoredRoom:
    """An open room as the store has it."""

    id: str
    digests: dict[str, str]    # role -> token digest
    created: float
    last_activity: float
    ever_joined: bool
    recording: bool
    recording_audio: bool


class RoomStore:
    """The `rooms` table of the relay's database (`db.open_db`)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self._db.execute(SCHEMA)

    def add(self, room_id: str, digests: dict[str, str], now: float) -> None:
        self._db.execute(
            "INSERT INTO rooms (id, patient_digest, doctor_digest, created, last_activity) VALUES (?, ?, ?, ?, ?)",
            (room_id, digests["patient"], digests["doctor"], now, now))

    def touch(self, room_id: str, last_activity: float, ever_joined: bool) -> None:
        self._db.execute("UPDATE rooms SET last_activity = ?, ever_joined = ? WHERE id = ?",
                         (last_activity, int(ever_joined), room_id))

    def set_recording(self, room_id: str, active: bool, audio: bool) -> None:
        self._db.execute("UPDATE rooms SET recording = ?, recording_audio = ? WHERE id = ?",
                         (int(active), int(audio and active), room_id))

    def close(self, room_id: str, now: float) -> None:
        self._db.execute("UPDATE rooms SET closed = ? WHERE id = ? AND closed IS NULL", (now, room_id))

    def load_open(self, idle_timeout_s: float, now: float) -> list[StoredRoom]:
        """The open rooms, oldest first; those idle for longer than `idle_timeout_s` (the
        relay was down meanwhile, or they were about to be closed) are closed instead."""
        self._db.execute("UPDATE rooms SET closed = ? WHERE closed IS NULL AND last_activity < ?",
                         (now, now - idle_timeout_s))
        rows = self._db.execute(
            "SELECT id, patient_digest, doctor_digest, created, last_activity, ever_joined, recording, recording_audio"
            " FROM rooms WHERE closed IS NULL ORDER BY created").fetchall()
        return [StoredRoom(row[0], {"patient": row[1], "doctor": row[2]}, row[3], row[4], bool(row[5]), bool(row[6]),
                           bool(row[7])) for row in rows]
