"""TURN for patients behind NAT: credentials by the TURN REST convention, checked by a
real coturn (Debian's `turnserver`, started here), and a consultation in Chromium whose
pages may use relay candidates only.

The credential tests allocate on coturn with aioice's TURN client: fresh credentials
are accepted; expired ones, or ones made with another secret, are refused. In the
browser, both pages of a consultation connect through coturn alone (`--relay-only`) and
the doctor sees the avatar; with a relay whose secret does not match coturn's, the page
says that the TURN server refused its credentials.
"""
from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from aioice.turn import create_turn_endpoint

from conftest import DATA
from server.ice import PageIce, turn_rest_credentials
from tests.test_server_browser import (CHROMIUM, _free_port, _wait_playing, _write_y4m, chromium_flags, new_room,
                                       open_pages, start_serve)

SECRET = "test-secret-of-this-clinic"
REALM = "dmask.test"
CLIP = DATA / "videos" / "p09_webcam.mp4"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.fixture
def coturn(tmp_path: Path):
    """A coturn on 127.0.0.1 with REST credentials (use-auth-secret); yields (url, port, log path)."""
    assert shutil.which("turnserver"), "coturn is installed by ./setup.sh --test"
    port = _free_port()
    log = tmp_path / "turnserver.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            ["turnserver", "-n", "--listening-ip=127.0.0.1", f"--listening-port={port}", "--relay-ip=127.0.0.1",
             "--use-auth-secret", f"--static-auth-secret={SECRET}", f"--realm={REALM}", "--allow-loopback-peers",
             "--no-tls", "--no-dtls", "--no-cli", "--log-file=stdout", "--simple-log", "--verbose",
             f"--pidfile={tmp_path / 'turnserver.pid'}", "--min-port=49152", "--max-port=65535"],
            stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 10
        while "Total General servers" not in log.read_text() and "relay ports initialization" not in log.read_text():
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        time.sleep(0.5)
        yield f"turn:127.0.0.1:{port}", port, log
    finally:
        server.terminate()
        server.wait(timeout=10)


async def _allocate(port: int, username: str, password: str) -> None:
    transport, _ = await create_turn_endpoint(asyncio.DatagramProtocol, ("127.0.0.1", port), username, password)
    transport.close()


def test_rest_credentials_known_answer() -> None:
    # The credential computed independently:
    #   printf '%s' 1700000000:room | openssl dgst -sha1 -hmac secret -binary | base64
    username, credential = turn_rest_credentials("secret", "room", 100.0, now=1699999900.0)
    assert username == "1700000000:room"
    assert credential == "WRucgkdMkcTgsz5Y1kolSAFG6fQ="


def test_coturn_accepts_fresh_and_refuses_expired_or_foreign_credentials(coturn) -> None:
    _, port, _ = coturn
    asyncio.run(_allocate(port, *turn_rest_credentials(SECRET, "room1", 60.0)))
    for username, password in (turn_rest_credentials(SECRET, "room1", -60.0),          # expired a minute ago
                               turn_rest_credentials("another secret", "room1", 60.0)):  # not this server's
        with pytest.raises(Exception, match="401"):
            asyncio.run(_allocate(port, username, password))


def test_page_configuration_per_room() -> None:
    ice = PageIce(["stun:stun.example.org:3478"], ["turn:turn.example.org:3478?transport=udp"], SECRET, 600.0, True)
    config = ice.for_room("abc", now=1000.0)
    assert config["iceTransportPolicy"] == "relay"
    stun, turn = config["iceServers"]
    assert stun == {"urls": "stun:stun.example.org:3478"}
    assert turn["urls"] == ["turn:turn.example.org:3478?transport=udp"] and turn["username"] == "1600:abc"
    assert turn["credential"] == turn_rest_credentials(SECRET, "abc", 600.0, now=1000.0)[1]
    assert PageIce().for_room("abc") == {"iceServers": [], "iceTransportPolicy": "all"}
    for bad in (dict(turn_urls=["stun:x"], turn_secret="s"), dict(turn_urls=["turn:x"]), dict(turn_secret="s"),
                dict(relay_only=True), dict(turn_urls=["turn:x"], turn_secret="s", turn_ttl_s=0)):
        with pytest.raises(ValueError):
            PageIce(**bad)


def test_consultation_through_turn_only_and_a_clear_refusal(coturn, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    url, _, turn_log = coturn
    width, height = _write_y4m(CLIP, tmp_path / "camera.y4m")
    good, good_base = start_serve(tmp_path, "--turn-url", url, "--turn-secret", SECRET, "--relay-only")
    wrong, wrong_base = start_serve(tmp_path, "--turn-url", url, "--turn-secret", "not coturn's secret", "--relay-only")
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        links, refused = new_room(good_base), new_room(wrong_base)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                 # no loopback candidate: relay candidates are the only way in
                                                 args=chromium_flags(tmp_path / "camera.y4m", loopback=False))
            try:
                patient, doctor = open_pages(browser, links)
                _wait_playing(doctor, "#masked", width, height, timeout_s=60)
                doctor.wait_for_function("() => document.querySelector('#status').dataset.state === 'live'",
                                         timeout=10000)
                doctor.screenshot(path=str(ARTIFACTS / "turn-doctor.png"), full_page=True)

                lost = browser.new_context(permissions=["camera", "microphone"]).new_page()
                lost.goto(refused["patient"])
                lost.wait_for_function(
                    "() => /TURN relay server refused/.test(document.querySelector('#status').textContent)",
                    timeout=30000)
                lost.screenshot(path=str(ARTIFACTS / "turn-refused.png"), full_page=True)
                assert lost.eval_on_selector("#status", "e => e.dataset.state") == "reconnecting"
            finally:
                browser.close()
    finally:
        for server in (good, wrong):
            server.terminate()
            server.communicate(timeout=20)
    # Both of the good room's pages allocated on coturn with that room's credentials.
    allocations = re.findall(r"user <\d+:([^>]+)>: incoming packet ALLOCATE processed, success", turn_log.read_text())
    assert allocations.count(links["id"]) >= 2, turn_log.read_text()[-3000:]
    assert refused["id"] not in allocations
