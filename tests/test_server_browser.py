"""End to end in a real browser: Debian's Chromium, driven by Playwright, plays a real
clip as the patient's camera; the doctor's page, in a second browser context, must show
the avatar at the camera's size and never the patient.

dlib's HOG detector also finds the avatar's face (it is a face, just nobody's), so
"not the patient" is checked with dlib's face-recognition network: the doctor's
frames must be farther than 0.6 (its "same person" threshold) from every camera frame,
and their corners the avatar's background colour. Screenshots of both pages go to
test-artifacts/.
"""
from __future__ import annotations

import base64
import contextlib
import json
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import cv2
import dlib
import face_recognition_models
import numpy as np
import pytest
from playwright.sync_api import Page, sync_playwright

from conftest import DATA, DMASK, video_frames
from dmask_rt.render.palette import BACKGROUND_RGB
from server.accounts import Accounts
from server.auth import CSRF_HEADER
from test_server_protocol import CLINICIAN

CHROMIUM = "/usr/bin/chromium"
CLIP = DATA / "videos" / "p09_webcam.mp4"  # 640x360, 30 fps, one face
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
SAME_PERSON = 0.6  # dlib's face-recognition threshold


def _write_y4m(source: Path, target: Path) -> tuple[int, int]:
    """The clip as raw YUV 4:2:0 frames, which Chromium's fake camera loops."""
    with av.open(str(source)) as inp, av.open(str(target), "w", format="yuv4mpegpipe") as out:
        stream = inp.streams.video[0]
        video = out.add_stream("rawvideo", rate=30)
        video.width, video.height, video.pix_fmt = stream.codec_context.width, stream.codec_context.height, "yuv420p"
        for frame in inp.decode(stream):
            frame.pts = None
            for packet in video.encode(frame.reformat(format="yuv420p")):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        return video.width, video.height


def chromium_flags(camera: Path, loopback: bool = True) -> list[str]:
    """Headless Chromium with `camera` (y4m) as its fake camera; `loopback`: it may pair with
    the relay's 127.0.0.1 candidate."""
    return ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={camera}",
            "--autoplay-policy=no-user-gesture-required"] + (["--allow-loopback-in-peer-connection"] if loopback else [])


def new_room(base: str) -> dict:
    """A consultation on the relay at `base`, made through the API by the test clinician
    (signed in first): {id, patient, doctor} (the links)."""
    http = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    login = json.dumps({"name": CLINICIAN[0], "password": CLINICIAN[1]}).encode()
    with http.open(urllib.request.Request(base + "/api/login", data=login, method="POST",
                                          headers={"Content-Type": "application/json"})) as response:
        csrf = json.load(response)["csrf"]
    with http.open(urllib.request.Request(base + "/api/rooms", method="POST", headers={CSRF_HEADER: csrf})) as response:
        return json.load(response)


def sign_in(page: Page, base: str) -> None:
    """Sign the test clinician in through the relay's pages: / leads to the sign-in page."""
    page.goto(base + "/")
    page.wait_for_url(base + "/login")
    page.fill("#name", CLINICIAN[0])
    page.fill("#password", CLINICIAN[1])
    page.click("#submit")
    page.wait_for_url(base + "/")
    page.wait_for_selector("#create:enabled")


def start_consultation(doctor: Page, base: str) -> dict:
    """As a clinician does it: sign in, "Start a consultation", read the two links; {id, patient, doctor}."""
    sign_in(doctor, base)
    doctor.click("#create")
    doctor.wait_for_selector("#links:not(.hidden)")
    links = {"patient": doctor.input_value("#patient-link"), "doctor": doctor.eval_on_selector("#doctor-link", "a => a.href")}
    links["id"] = links["patient"].split("/room/")[1].split("/")[0]
    return links


def open_pages(browser: Any, links: dict) -> tuple[Page, Page]:
    """The patient's page (camera and microphone allowed) and the doctor's, signed in, each in its own context."""
    patient = browser.new_context(permissions=["camera", "microphone"]).new_page()
    doctor = browser.new_context(permissions=["microphone"]).new_page()
    sign_in(doctor, links["patient"].split("/room/")[0])
    patient.goto(links["patient"])
    doctor.goto(links["doctor"])
    return patient, doctor


@contextlib.contextmanager
def chromium_consultation(relay: str, camera: Path, width: int, height: int) -> Iterator[tuple[Page, Page, dict]]:
    """A new consultation on `relay` with both pages open in headless Chromium (the doctor
    signed in and started it on the start page), the doctor's already playing the masked
    video; yields (patient page, doctor page, links)."""
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=chromium_flags(camera))
        try:
            doctor = browser.new_context(permissions=["microphone"]).new_page()
            links = start_consultation(doctor, relay)
            doctor.click("#doctor-link")
            patient = browser.new_context(permissions=["camera", "microphone"]).new_page()
            patient.goto(links["patient"])
            _wait_playing(doctor, "#masked", width, height, timeout_s=45)
            yield patient, doctor, links
        finally:
            browser.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Faces:
    """dlib's detector and 128-d face descriptor (face_recognition_models' weights)."""

    def __init__(self) -> None:
        self.detect = dlib.get_frontal_face_detector()
        self.shape = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())
        self.net = dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())

    def descriptors(self, rgb: np.ndarray) -> list[np.ndarray]:
        rgb = np.ascontiguousarray(rgb)
        return [np.array(self.net.compute_face_descriptor(rgb, self.shape(rgb, box))) for box in self.detect(rgb, 1)]


def _grab(page: Page, selector: str) -> np.ndarray:
    """The <video>'s current picture at its own size, as RGB."""
    url = page.eval_on_selector(selector, """v => {
        const c = document.createElement('canvas'); c.width = v.videoWidth; c.height = v.videoHeight;
        c.getContext('2d').drawImage(v, 0, 0); return c.toDataURL('image/png'); }""")
    png = np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8)
    return cv2.cvtColor(cv2.imdecode(png, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _wait_playing(page: Page, selector: str, width: int, height: int, timeout_s: float) -> None:
    page.wait_for_function(
        """([sel, w, h]) => { const v = document.querySelector(sel);
            return v && v.videoWidth === w && v.videoHeight === h && v.currentTime > 0 && !v.paused
                && v.getVideoPlaybackQuality().totalVideoFrames > 20; }""",
        arg=[selector, width, height], timeout=timeout_s * 1000,
    )


#: base URL -> process id of each `dmask serve` started here (other relays may run on the machine)
SERVED: dict[str, int] = {}


def _workers(base: str) -> list[str]:
    """The room worker processes of the relay at `base`."""
    found = subprocess.run(["pgrep", "-P", str(SERVED[base]), "-f", "server.worker"], capture_output=True, text=True)
    return found.stdout.split()


def start_serve(tmp_path: Path, *args: str, data: Path | None = None) -> tuple[subprocess.Popen, str]:
    """`dmask serve` on a free port in `tmp_path` with `args`, with the test clinician's
    account in `data` (default: a data directory of its own), once it answers; (process, base URL)."""
    port = _free_port()
    data = data or tmp_path / f"data-{port}"
    accounts = Accounts.open(data)
    if CLINICIAN[0] not in {user.name for user in accounts.users()}:
        accounts.add(*CLINICIAN)
    accounts.db.close()
    server = subprocess.Popen([*DMASK, "serve", "--port", str(port), "--data", str(data), *args], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1)
            SERVED[base] = server.pid
            return server, base
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, server.stdout.read() if server.stdout else ""
            time.sleep(0.2)


@pytest.fixture
def relay(tmp_path: Path):
    server, base = start_serve(tmp_path)
    yield base
    server.terminate()
    log = server.communicate(timeout=20)[0]
    assert "token=" not in log  # tokens never reach the log


def _ycbcr(rgb: np.ndarray) -> np.ndarray:
    """BT.601 full-range (Y, Cb, Cr) of RGB values (last axis)."""
    m = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
    return rgb @ m.T + np.array([0.0, 128.0, 128.0])


def test_doctor_page_shows_the_avatar_not_the_patient(relay: str, tmp_path: Path) -> None:
    width, height = _write_y4m(CLIP, tmp_path / "camera.y4m")
    faces = _Faces()
    source = [d for frame in video_frames(CLIP, step=12) for d in faces.descriptors(frame)]
    assert len(source) >= 5  # the detector does find the patient in the camera frames

    with chromium_consultation(relay, tmp_path / "camera.y4m", width, height) as (patient, doctor, _):
        _wait_playing(patient, "#avatar", width, height, timeout_s=10)
        frames = []
        for _ in range(8):
            frames.append(_grab(doctor, "#masked"))
            doctor.wait_for_timeout(250)
        doctor.wait_for_function("() => document.querySelector('#status').dataset.state === 'live'", timeout=10000)
        patient.wait_for_function("() => document.querySelector('#status').dataset.state === 'live'", timeout=10000)
        # Every measure the page lists arrives live (a key the relay does not send stays "–").
        values = doctor.locator("#values tr:not(.hidden) td.value").all_inner_texts()  # the calibrated rows show after an exam
        assert values and "–" not in values, values
        patient.screenshot(path=str(ARTIFACTS / "serve-patient.png"), full_page=True)
        doctor.screenshot(path=str(ARTIFACTS / "serve-doctor.png"), full_page=True)
        doctor.click("#end")  # both pages stop (the patient's does not try to reconnect)
        for page in (doctor, patient):
            page.wait_for_function("() => document.querySelector('#status').dataset.state === 'ended'", timeout=10000)

    # The corners are the avatar's flat background. VP8 keeps a flat area's luma and, in a
    # low-bitrate frame, may pull its chroma toward grey: one run's first frames read
    # (140, 137, 141) for (128, 140, 156), the same luma (138.4 / 138.3), chroma 8.5 off.
    background = _ycbcr(np.array(BACKGROUND_RGB, float))
    for frame in frames:
        assert frame.shape == (height, width, 3)
        for corner in (frame[:8, :8], frame[:8, -8:], frame[-8:, :8], frame[-8:, -8:]):
            pixels = corner.reshape(-1, 3).astype(float)
            assert pixels.std(0).max() < 3, pixels.std(0)  # flat
            offset = np.abs(_ycbcr(pixels.mean(0)) - background)
            assert offset[0] < 4 and offset[1:].max() < 12, offset
    avatar = [d for frame in frames for d in faces.descriptors(frame)]
    assert avatar, "no avatar face in the doctor's frames"
    closest = min(np.linalg.norm(a - s) for a in avatar for s in source)
    assert closest > SAME_PERSON, f"the doctor's video resembles the patient ({closest:.2f})"


def test_pages_come_back_by_themselves_when_the_rooms_worker_dies(relay: str, tmp_path: Path) -> None:
    """The room's worker process killed mid-consultation: the front tells both pages to
    reconnect, a new worker starts, and both pages are live again with no one clicking.
    How long it took goes to test-artifacts/worker-restart.json (figures are for `dmask
    latency` and the README, not for a timed assertion)."""
    width, height = _write_y4m(CLIP, tmp_path / "camera.y4m")
    live = "() => document.querySelector('#status').dataset.state === 'live'"
    with chromium_consultation(relay, tmp_path / "camera.y4m", width, height) as (patient, doctor, _):
        for page in (doctor, patient):
            page.wait_for_function(live, timeout=10000)
        workers = _workers(relay)
        assert len(workers) == 1, workers
        killed = time.monotonic()
        subprocess.run(["kill", "-9", workers[0]], check=True)
        for page in (doctor, patient):
            page.wait_for_function("() => document.querySelector('#status').dataset.state === 'reconnecting'",
                                   timeout=10000)
        # Frames the doctor's <video> presents from now on (the dead connection presents none;
        # totalVideoFrames would start again with the new stream's).
        doctor.evaluate("""() => { const v = document.querySelector('#masked'); window.presented = 0;
            const tick = () => { window.presented++; v.requestVideoFrameCallback(tick); };
            v.requestVideoFrameCallback(tick); }""")
        for page in (doctor, patient):
            page.wait_for_function(live, timeout=30000)
        doctor.wait_for_function("() => window.presented > 0", timeout=30000)
        first = time.monotonic() - killed
        doctor.wait_for_function("() => window.presented > 30", timeout=30000)
        back = time.monotonic() - killed
        new = _workers(relay)
        assert len(new) == 1 and new != workers
        (ARTIFACTS / "worker-restart.json").write_text(
            json.dumps({"first_frame_again_s": round(first, 2), "pages_live_again_s": round(back, 2)}) + "\n")



def test_sign_in_start_and_the_tokens_stay_out_of_urls_referers_and_the_log(tmp_path: Path) -> None:
    """A clinician signs in, starts a consultation and opens the doctor's link; the patient
    opens theirs. Every request either page makes is watched: the tokens travel only in
    the X-Room-Token header (and the cookie the page trades it for), never in a URL, a
    Referer or the relay's log; the address bar loses the fragment at once."""
    width, height = _write_y4m(CLIP, tmp_path / "camera.y4m")
    server, base = start_serve(tmp_path)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                 args=chromium_flags(tmp_path / "camera.y4m"))
            try:
                doctor = browser.new_context(permissions=["microphone"], accept_downloads=True).new_page()
                patient = browser.new_context(permissions=["camera", "microphone"]).new_page()
                watched: list[Any] = []
                for page in (doctor, patient):
                    page.on("request", lambda request: watched.append(request))
                patient.goto(base + "/")
                patient.wait_for_url(base + "/login")  # the patient has no account and needs none
                links = start_consultation(doctor, base)
                assert doctor.inner_text("#who") == CLINICIAN[0]
                tokens = {role: links[role].split("#")[1] for role in ("patient", "doctor")}
                assert links["patient"] == f"{base}/room/{links['id']}/patient#{tokens['patient']}"
                doctor.click("#doctor-link")
                patient.goto(links["patient"])
                for page in (doctor, patient):
                    page.wait_for_function("() => document.querySelector('#status').dataset.state === 'live'",
                                           timeout=45000)
                for page, role in ((doctor, "doctor"), (patient, "patient")):
                    assert page.url == f"{base}/room/{links['id']}/{role}"  # the fragment is gone at once
                # The doctor records, and downloads with the room's cookie and the session.
                doctor.click("#record")
                doctor.wait_for_timeout(2500)
                doctor.click("#record")
                doctor.wait_for_selector("#recordings a[href$='.mp4']", timeout=15000)
                href = doctor.eval_on_selector("#recordings a[href$='.mp4']", "a => a.href")
                with doctor.expect_download() as download:
                    doctor.click("#recordings a[href$='.mp4']")
                # No token in the link: the room's cookie (and the session) let it through.
                assert Path(download.value.path()).stat().st_size > 1000
                assert href.startswith(f"{base}/api/rooms/{links['id']}/recordings/") and "?" not in href
                doctor.reload()  # the token survives a reload (this tab's sessionStorage), not in the URL
                doctor.wait_for_function("() => document.querySelector('#status').dataset.state === 'live'",
                                         timeout=30000)
                doctor.click("#end")
                patient.wait_for_function("() => document.querySelector('#status').dataset.state === 'ended'",
                                          timeout=10000)
                doctor.goto(base + "/")
                doctor.click("#sign-out")
                doctor.wait_for_url(base + "/login")
                doctor.goto(base + "/")
                doctor.wait_for_url(base + "/login")  # signed out: the start page is closed again
                # Every header as sent, Referer and Cookie included.
                requests = [(r.url, r.method, r.all_headers()) for r in watched]
            finally:
                browser.close()
    finally:
        server.terminate()
        log = server.communicate(timeout=20)[0]
    api = [(url, method, headers) for url, method, headers in requests if "/api/rooms/" in url]
    assert len(api) >= 8
    for url, _, headers in requests:
        for token in tokens.values():
            assert token not in url, url
            assert token not in headers.get("referer", ""), (url, headers.get("referer"))
            assert not any(token in value for key, value in headers.items() if key not in ("x-room-token", "cookie"))
    sent = {headers.get("x-room-token") for url, method, headers in api if method == "POST" or url.endswith("/ice")}
    assert sent == set(tokens.values())  # each page sent its own token, in the header
    events = [headers for url, _, headers in api if url.endswith("/doctor/events")]
    assert events and f"dmask_room_doctor={tokens['doctor']}" in events[0].get("cookie", "")  # the cookie, not the URL
    assert f"GET /api/rooms/{links['id']}/recordings/" in log  # the log has the paths ...
    assert not any(token in log for token in tokens.values())  # ... never a token
