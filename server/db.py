"""The relay's own state on disk: one SQLite file in its data directory.

Clinicians' accounts and sessions (`accounts.py`) and the rooms with their links and
recording state (`store.py`) live in `<data>/dmask.sqlite3`, so a restarted relay keeps
them. Write-ahead logging lets the front read while it writes; the file and its directory
are the server user's alone (they hold password hashes and link digests).
"""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path

DB_NAME = "dmask.sqlite3"


def open_db(data_dir: Path) -> sqlite3.Connection:
    """The data directory's database (made if missing), in autocommit mode: each statement
    is its own transaction unless a caller opens one (`with connection:`)."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = data_dir / DB_NAME
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    os.chmod(path, 0o600)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")  # WAL: a crash loses at most the last commits, never the file
    connection.execute("PRAGMA foreign_keys=ON")
    return connection
