"""Output files: checked before any work, written under a temporary name, renamed on success.

A crash, an error or Ctrl-C mid-job must never leave a partial video or log at
the requested path, so every output goes through `AtomicFile`. Ctrl-C can land
between creating a temporary file and the `try` that would delete it, so each
one is also listed until committed or discarded, and `discard_pending()` (the
CLI's interrupt handler) deletes whatever is left.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from types import TracebackType

_pending: set[Path] = set()  # temporary files created and not yet committed or discarded


class OutputPathError(ValueError):
    """An output path that cannot be written; the message is one line for the user."""


def check_output_path(path: str | os.PathLike[str], suffixes: tuple[str, ...]) -> Path:
    """Return `path` as a Path if a file with one of `suffixes` can be created there.

    Raises OutputPathError naming the problem: a directory, a wrong extension,
    a missing or unwritable parent directory.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{path}: is a directory")
    if path.suffix.lower() not in suffixes:
        raise OutputPathError(f"{path}: unsupported extension {path.suffix or '(none)'!r}, use {' or '.join(suffixes)}")
    parent = path.parent
    if not parent.is_dir():
        raise OutputPathError(f"{path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"{path}: directory {parent} is not writable")
    return path


class AtomicFile:
    """A hidden temporary file beside `path`, renamed to `path` by `commit()`.

    The temporary name keeps the final suffix so that tools which pick a format
    from the file name (ffmpeg's muxers) see the right one.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.part{path.suffix}")
        _pending.add(self.tmp)  # listed before it exists, so no interrupt can orphan it
        try:
            # O_EXCL: never clobber anything; mode 0o666 so the umask applies as for any new file.
            os.close(os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except OSError as err:
            _pending.discard(self.tmp)
            raise OutputPathError(f"{path}: cannot create a file there ({err.strerror})") from None

    def commit(self) -> None:
        """Move the finished temporary file to the final path (atomic on one filesystem)."""
        os.replace(self.tmp, self.path)
        _pending.discard(self.tmp)

    def discard(self) -> None:
        """Delete the temporary file; the final path is left untouched."""
        self.tmp.unlink(missing_ok=True)
        _pending.discard(self.tmp)


def discard_pending() -> None:
    """Delete every temporary output file not yet committed or discarded (after Ctrl-C)."""
    for tmp in list(_pending):
        tmp.unlink(missing_ok=True)
        _pending.discard(tmp)


class AtomicOutput:
    """Base of writers that publish their file only when complete.

    Subclasses provide `close()` (finish and commit) and `abort()` (discard); as a
    context manager the writer closes on success and aborts on any exception.
    """

    def close(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> AtomicOutput:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_atomically(path: Path, data: bytes) -> None:
    """Write a small file in one go, through a temporary file renamed on success."""
    file = AtomicFile(path)
    try:
        file.tmp.write_bytes(data)
    except BaseException:
        file.discard()
        raise
    file.commit()
