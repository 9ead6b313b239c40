"""The harness's relays: `dmask serve`'s application with per-frame reports, mask on or off.

Only the harness starts these. The pass-through masker (the camera frame itself as the
"avatar") exists for the baseline and is not reachable from `dmask serve`.

`python -m client.latency.relay` serves a masking relay and a pass-through relay from
one child process (so the clients' CPU use is not the relay's, and its memory is its
own), each room's media in a worker process of its own as `dmask serve` runs it (the
relay's CPU is that process's and its workers'), prints `{"pid", "mask", "pass", "login"}`
(base URLs, and the clinician account the harness signs in with to create rooms) as one
JSON line on the pipe to the harness, and stops when its stdin closes. The account, like
the relays' data, lives in a temporary directory that goes with them.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from aiohttp import web

from dmask_rt.pipeline import FrameResult
from server.accounts import Accounts
from server.app import ServeConfig, create_app
from server.media import MaskerFactory, default_masker
from server.rooms import Limits

LIMITS = Limits(max_rooms=64, max_peers=128)  # the capacity sweep, not the product, sets the limit
CLINICIAN = "latency-harness"


class PassThrough:
    """A 'masker' that returns the camera frame: the relay's cost without the mask."""

    closeup_size = None

    def process(self, rgb: np.ndarray) -> FrameResult:
        return FrameResult(rgb, True, None, {})

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class RelayProcess:
    pid: int                # the process serving the relays
    urls: dict[str, str]    # name -> base URL
    login: tuple[str, str]  # a clinician account on all of them: (name, password)


@contextlib.asynccontextmanager
async def relays(maskers: Mapping[str, MaskerFactory | str]) -> AsyncIterator[RelayProcess]:
    """One relay per masker on 127.0.0.1, in this event loop and process, sharing one
    clinician account.

    A "module:factory" string is built in each room's worker process, as `dmask serve`
    runs rooms; a factory runs the rooms in this process (the harness's own tests).
    """
    async with contextlib.AsyncExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dmask-latency-")))
        recordings = root / "recordings"
        recordings.mkdir()
        login = (CLINICIAN, secrets.token_urlsafe(24))
        urls = {}
        for name, masker in maskers.items():
            data = root / f"data-{name}"  # each relay's own rooms: a relay restores what its data holds
            accounts = Accounts.open(data)
            accounts.add(*login)
            accounts.db.close()
            config = ServeConfig(recordings=recordings, data=data, limits=LIMITS, frame_reports=True)
            factory = default_masker
            if isinstance(masker, str):
                config.room_workers, config.worker_masker = True, masker
            else:
                factory = masker
            runner = web.AppRunner(create_app(config, factory), access_log=None)
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            urls[name] = f"http://127.0.0.1:{port}"
        yield RelayProcess(os.getpid(), urls, login)


@contextlib.asynccontextmanager
async def child_relays(timeout: float = 60.0) -> AsyncIterator[RelayProcess]:
    """The masking and pass-through relays in a child process."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "client.latency.relay", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None
    try:
        line = await asyncio.wait_for(child.stdout.readline(), timeout)
        if not line:
            raise RuntimeError("the harness relay did not start (see its error above)")
        info = json.loads(line)
        yield RelayProcess(info["pid"], {"mask": info["mask"], "pass": info["pass"]}, tuple(info["login"]))
    finally:
        child.stdin.close()
        try:
            await asyncio.wait_for(child.wait(), 15)
        except asyncio.TimeoutError:
            child.kill()
            await child.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time process `pid` has used (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_pids(pid: int) -> list[int]:
    """Process `pid` and its running descendants (the room workers)."""
    pids, stack = [], [pid]
    while stack:
        current = stack.pop()
        try:
            tasks = list(Path(f"/proc/{current}/task").iterdir())
        except OSError:  # a process that just ended
            continue
        pids.append(current)
        for task in tasks:
            # each thread lists the children it started; one that just ended takes none along
            with contextlib.suppress(OSError, ValueError):
                stack += [int(child) for child in (task / "children").read_text().split()]
    return pids


def _tree_sum(pid: int, read: Callable[[int], float]) -> float:
    total = 0.0
    for current in tree_pids(pid):
        with contextlib.suppress(OSError, ValueError):
            total += read(current)
    return total


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of process `pid` and of its running descendants, in seconds."""
    return _tree_sum(pid, cpu_seconds)


def tree_rss_mib(pid: int) -> float:
    """Resident memory of process `pid` and its running descendants, in MiB."""
    return _tree_sum(pid, rss_mib)


def tree_open_files(pid: int) -> int:
    """File descriptors open in process `pid` and its running descendants."""
    return int(_tree_sum(pid, lambda p: len(os.listdir(f"/proc/{p}/fd"))))


def tree_threads(pid: int) -> int:
    """Threads of process `pid` and its running descendants."""
    return int(_tree_sum(pid, lambda p: len(os.listdir(f"/proc/{p}/task"))))


def machine_cpu_seconds() -> float:
    """CPU time all processes have used (Linux /proc/stat), in seconds: others' load shows."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    busy = sum(int(v) for i, v in enumerate(fields[:8]) if i not in (3, 4))  # all but idle, iowait
    return busy / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    """Resident memory of process `pid` (Linux /proc), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no VmRSS for process {pid}")


async def _main() -> None:
    async with relays({"mask": "server.media:default_masker", "pass": "client.latency.relay:PassThrough"}) as started:
        print(json.dumps({"pid": started.pid, **started.urls, "login": started.login}), flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)  # until the harness closes our stdin


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.WARNING, format="relay: %(name)s: %(message)s")
    asyncio.run(_main())
