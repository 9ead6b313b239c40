"""Shared test fixtures and helpers.

Real footage lives outside the repository in ``../shared/data`` (see its README);
tests read it from there and never copy it in.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def video_frames(path: Path | str, step: int = 1) -> Iterator[np.ndarray]:
    """Every ``step``-th frame of the video at ``path`` as an RGB uint8 (H, W, 3) array."""
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % step == 0:
                yield frame.to_ndarray(format="rgb24")


# --- the `dmask` command as a user runs it (test_cli.py, test_preview.py) ---------------

# The installed entry point when there is one (./setup.sh), else the same main() via -m.
_ENTRY_POINT = Path(sys.executable).with_name("dmask")
DMASK = [str(_ENTRY_POINT)] if _ENTRY_POINT.exists() else [sys.executable, "-m", "dmask_rt.cli"]


def run_dmask(*args: object, cwd: Path, env: dict[str, str] | None = None,
              as_plain_user: bool = False) -> subprocess.CompletedProcess:
    """Run `dmask ARGS` in `cwd` as a subprocess, capturing its output as text.

    `as_plain_user`: root reads and writes through any permission bits, so chmod-based
    cases would not fail for it. For root the process then runs without that privilege
    (CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH dropped with util-linux's setpriv), so
    permission bits apply to it as to any other user.
    """
    cmd = [*DMASK, *map(str, args)]
    if as_plain_user and os.geteuid() == 0:
        cmd = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *cmd]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def assert_refused(result: subprocess.CompletedProcess, reason: str) -> None:
    """Exit code 2 and exactly one line on stderr, naming `reason`."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("dmask: error: ") and reason in lines[0], lines[0]
