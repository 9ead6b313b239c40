"""Hostile media from a patient: 1x1 and 8K frames, a new resolution every frame, black,
noise, a masker that fails; and, through real aiortc, a patient whose VP8 bitstream is
corrupt. The camera pixels are magenta, which neither the avatar nor the placeholder ever
use: the doctor must never receive one. Nothing crashes, memory and threads stay flat.
"""
from __future__ import annotations

import asyncio
import fractions
import os
import random
import threading
import time
from pathlib import Path

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from client.peer import Peer
from dmask_rt.pipeline import FrameResult
from hostile import Served, relay_server
from server.media import MAX_CAMERA_PIXELS, MAX_CAMERA_SIDE, MaskedVideoTrack, MaskEngine, default_masker
from server.metrics import Metrics

MAGENTA = np.array([255, 0, 255])
SIZES = [(1, 1), (2, 2), (3, 5), (7680, 4320), (640, 480), (16383, 2), (1921, 1081), (99, 1), (4096, 4096)]


def camera_image(width: int, height: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """The patient's picture: magenta, magenta with noise, or black (the avatar's own colour: no
    test of leaks, but of a dark frame)."""
    if kind == "black":
        return np.zeros((height, width, 3), np.uint8)
    image = np.empty((height, width, 3), np.uint8)
    image[:] = MAGENTA
    if kind == "noise":
        image[::2] = rng.integers(0, 256, (image[::2].shape), np.uint8)
    return image


def magenta_share(image: np.ndarray, tolerance: int = 60) -> float:
    """The share of `image`'s pixels within `tolerance` of magenta (VP8 shifts colours a little)."""
    return float((np.abs(image.astype(int) - MAGENTA).max(axis=2) < tolerance).mean())


class HostileCamera(MediaStreamTrack):
    """Decoded-looking frames (yuv420p, as aiortc's decoder gives them) of the sizes and kinds given, in turn."""

    kind = "video"

    def __init__(self, frames: list[tuple[int, int, str]], fps: float = 60.0) -> None:
        super().__init__()
        self.frames, self.sent, self._fps = frames, 0, fps
        self._rng = np.random.default_rng(0)

    async def recv(self) -> av.VideoFrame:
        if self.sent >= len(self.frames):
            self.stop()
            raise MediaStreamError
        await asyncio.sleep(1 / self._fps)
        width, height, kind = self.frames[self.sent]
        self.sent += 1
        frame = av.VideoFrame.from_ndarray(camera_image(width, height, kind, self._rng), format="rgb24")
        frame = frame.reformat(format="yuv420p") if width > 1 and height > 1 else frame
        frame.pts, frame.time_base = self.sent * 3000, fractions.Fraction(1, 90000)
        return frame


class SometimesFailing:
    """The real masker, except that every third frame raises."""

    def __init__(self) -> None:
        self.masker = default_masker()
        self.calls = 0
        self.shapes: list[tuple[int, ...]] = []

    @property
    def closeup_size(self) -> tuple[int, int] | None:
        return self.masker.closeup_size

    @closeup_size.setter
    def closeup_size(self, size: tuple[int, int] | None) -> None:
        self.masker.closeup_size = size

    def process(self, rgb: np.ndarray) -> FrameResult:
        self.calls += 1
        self.shapes.append(rgb.shape)
        if self.calls % 3 == 0:
            raise RuntimeError("simulated masker failure")
        return self.masker.process(rgb)

    def close(self) -> None:
        self.masker.close()


def test_the_engine_masks_odd_frames_within_bounds_and_never_passes_them_on() -> None:
    kinds = ["magenta", "noise", "black"]
    sizes = SIZES + [(random.Random(i).randint(1, 2500), random.Random(-i).randint(1, 2500)) for i in range(20)]  # a new size every frame
    frames = [(w, h, kinds[i % 3]) for i, (w, h) in enumerate(sizes)]
    masker = SometimesFailing()

    async def scenario() -> tuple[list, list]:
        engine = MaskEngine(Metrics(), lambda: masker)
        published: list[np.ndarray] = []
        engine.add_listener(lambda masked: published.append(masked.image))
        track = MaskedVideoTrack(engine)
        sent: list[av.VideoFrame] = []
        camera = HostileCamera(frames, fps=15)
        engine.attach(camera)
        deadline = time.monotonic() + 60
        while camera.readyState == "live" and time.monotonic() < deadline:
            sent.append(await track.recv())
        await asyncio.sleep(0.5)
        await engine.close()
        assert engine.failures >= 1  # the masker's failures became placeholders
        return published, sent

    published, sent = asyncio.run(scenario())
    assert len(published) >= len(frames) // 3, len(published)  # the engine kept going (latest frame wins)
    for shape in masker.shapes:
        assert shape[0] * shape[1] <= MAX_CAMERA_PIXELS and max(shape[:2]) <= MAX_CAMERA_SIDE, shape
    assert max(shape[0] * shape[1] for shape in masker.shapes) > 1_000_000  # the big ones came, scaled down
    for image in published + [f.to_ndarray(format="rgb24") for f in sent]:
        assert image.shape[0] * image.shape[1] <= MAX_CAMERA_PIXELS
        assert magenta_share(image, tolerance=1) == 0.0


# --- through aiortc: a patient whose VP8 is corrupt -------------------------------------------------

class CorruptVp8(MediaStreamTrack):
    """Pre-encoded VP8 (aiortc's sender packetizes `av.Packet`s as they are): magenta frames
    at a new size every few frames, with bytes flipped, cut short, or replaced by noise."""

    kind = "video"

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self._rng = random.Random(seed)
        self._images = np.random.default_rng(seed)
        self._codec: av.CodecContext | None = None
        self.count = 0

    def _encode(self, width: int, height: int) -> bytes:
        if self._codec is None or (self._codec.width, self._codec.height) != (width, height):
            self._codec = av.CodecContext.create("libvpx", "w")
            self._codec.width, self._codec.height, self._codec.pix_fmt = width, height, "yuv420p"
            self._codec.time_base = fractions.Fraction(1, 90000)
            self._codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
        image = camera_image(width, height, self._rng.choice(["magenta", "noise"]), self._images)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
        frame.pts = self.count * 3000
        return b"".join(bytes(p) for p in self._codec.encode(frame))

    async def recv(self) -> av.Packet:
        await asyncio.sleep(1 / 30)
        self.count += 1
        size = self._rng.choice([(64, 48), (320, 240), (642, 362), (16, 16), (1280, 720), (2, 2)])
        data = self._encode(*size) or bytes(10)
        roll = self._rng.random()
        if roll < 0.4:   # bytes flipped after the frame header
            data = bytearray(data)
            for _ in range(self._rng.randint(1, 20)):
                i = self._rng.randrange(min(10, len(data) - 1), len(data))
                data[i] ^= 1 << self._rng.randrange(8)
            data = bytes(data)
        elif roll < 0.55:  # cut short
            data = data[: self._rng.randrange(1, len(data) + 1)]
        elif roll < 0.7:   # noise
            data = self._rng.randbytes(self._rng.randint(1, 3000))
        packet = av.Packet(data)
        packet.pts, packet.time_base = self.count * 3000, fractions.Fraction(1, 90000)
        return packet


def _own_threads() -> list[str]:
    """The threads' names, but for asyncio's default pool (aiortc encodes there), which grows
    to its max_workers on demand and keeps them."""
    return sorted(t.name for t in threading.enumerate() if not t.name.startswith("asyncio_"))


def _pool_threads() -> int:
    return sum(t.name.startswith("asyncio_") for t in threading.enumerate())


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20


async def _storm(served: Served, frames: int, seed: int) -> list[np.ndarray]:
    """A patient sending `frames` corrupt VP8 frames while a doctor receives: the doctor's frames."""
    room, tokens = await served.create_room()
    camera = CorruptVp8(seed)
    patient = Peer(served.base, room, "patient", tokens["patient"], video=camera)
    doctor = Peer(served.base, room, "doctor", tokens["doctor"], keep_frames=1000)
    await patient.connect()
    await doctor.connect()
    await patient.wait_connected()
    await doctor.wait_connected()
    deadline = time.monotonic() + 60  # counted, not timed: the machine may be busy
    while camera.count < frames and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert camera.count >= frames, camera.count
    received = [frame.to_ndarray(format="rgb24") for _, frame in doctor.received.video]
    for peer in (patient, doctor):
        await peer.close()
    await served.relay.rooms.close_room(served.relay.rooms.get(room), "test")
    return received


def test_a_corrupt_vp8_stream_never_reaches_the_doctor_and_leaks_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with relay_server(tmp_path) as served:
            await _storm(served, 60, seed=1)  # warms up: the masker, encoders, decoders
            await asyncio.sleep(2.0)  # the warm-up room's closed pools end their threads
            threads, pool, rss = _own_threads(), _pool_threads(), _rss_mb()
            decoded = served.relay.metrics.frames_in
            received = await _storm(served, 120, seed=2)
            assert len(received) > 20, len(received)
            assert served.relay.metrics.frames_in - decoded > 20  # what still decoded reached the engine
            assert all(magenta_share(frame) < 0.001 for frame in received), max(magenta_share(f) for f in received)
            status, health, _ = await served.request("GET", "/healthz")
            assert status == 200 and health["peers"] == 0 and health["rooms"] == 0
            deadline = time.monotonic() + 10
            while not set(_own_threads()) <= set(threads) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)  # closed pools end their threads
            assert set(_own_threads()) <= set(threads), (threads, _own_threads())
            assert _pool_threads() - pool <= min(32, (os.cpu_count() or 1) + 4)  # its max_workers
            # A guard against gross leaks (frames queued without bound: 1080p at 30 fps is ~190 MB/s),
            # not a proof of flatness: libvpx contexts at each new size and malloc's arenas make
            # RSS creep by some tens of MB in a storm (measured: +15..30 MB per 60 frames, slowing).
            assert _rss_mb() - rss < 400, (rss, _rss_mb())

    asyncio.run(scenario())
