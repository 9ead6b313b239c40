"""`dmask preview` in a real window on a virtual X server (Xvfb, installed by ./setup.sh)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import DATA, assert_refused, run_dmask

from dmask_rt.video.decode import VideoReader


@pytest.fixture(scope="module")
def display() -> Iterator[str]:
    """A private Xvfb server; -displayfd makes it pick a free display and say when it is ready."""
    xvfb = shutil.which("Xvfb")
    assert xvfb, "Xvfb is not installed: run ./setup.sh"
    server = subprocess.Popen([xvfb, "-displayfd", "1", "-screen", "0", "1280x720x24", "-nolisten", "tcp"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        number = server.stdout.readline().strip()
        assert number.isdigit(), "Xvfb did not start"
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(timeout=10)


WEBCAM = DATA / "videos" / "p09_webcam.mp4"  # 640x360


def test_preview_shows_original_and_avatar(display: str, tmp_path: Path) -> None:
    env = {**os.environ, "DISPLAY": display}
    env.pop("WAYLAND_DISPLAY", None)
    result = run_dmask("preview", WEBCAM, "--frames", 20, "--screenshot", "shot.png", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    shot = cv2.cvtColor(cv2.imread(str(tmp_path / "shot.png")), cv2.COLOR_BGR2RGB)
    height, width = shot.shape[:2]
    assert abs(width / height - 2 * 640 / 360) < 0.02  # the window fits original | avatar
    left, right = shot[:, : width // 2].astype(int), shot[:, width // 2 :].astype(int)
    with VideoReader(WEBCAM) as reader:
        original = next(f.rgb for f in reader if f.index == 19)  # the 20th frame is the last shown
    original = cv2.resize(original, (left.shape[1], left.shape[0]), interpolation=cv2.INTER_AREA).astype(int)
    assert np.abs(left - original).mean() < 8  # left: the camera picture
    assert right.std() > 5  # right: something drawn, not a blank window
    assert np.abs(right - original).mean() > 20  # ... and not the camera picture


def test_preview_without_display_is_refused(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = run_dmask("preview", WEBCAM, "--frames", 1, cwd=tmp_path, env=env)
    assert_refused(result, "cannot open a window")
    assert list(tmp_path.iterdir()) == []
