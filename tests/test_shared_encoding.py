"""The avatar encoded once for all its WebRTC consumers (server/encoding.py).

A stand-in masker (a moving picture, no models) and a 30 fps stand-in camera feed a real
`MaskEngine`; its consumers' packets are checked as a receiver sees them: identical,
in order, from a keyframe, and decoded by libvpx without an error.
"""
from __future__ import annotations

import asyncio
import fractions
import time
from collections.abc import Awaitable, Callable
from typing import Any

import av
import numpy as np
import pytest
from aiortc import RTCRtpSender
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtp import RTCP_PSFB_APP, RTCP_PSFB_PLI, RtcpPsfbPacket, pack_remb_fci

from dmask_rt.pipeline import FrameResult
from server import encoding
from server.encoding import QUEUE_PACKETS, EncodedVideoTrack, is_keyframe
from server.media import MaskEngine
from server.metrics import Metrics

SIZE = (320, 240)


class MovingMasker:
    """An 'avatar' that moves every frame (so VP8 codes real inter frames)."""

    closeup_size = None

    def __init__(self) -> None:
        self.calls = 0
        self._x = np.arange(SIZE[0], dtype=np.int32)[None, :, None]

    def process(self, rgb: np.ndarray) -> FrameResult:
        self.calls += 1
        image = np.broadcast_to(((self._x + 7 * self.calls) % 256).astype(np.uint8), (*rgb.shape[:2], 3)).copy()
        return FrameResult(image, True, {"head_yaw_deg": 0.0})

    def close(self) -> None:
        pass


class Camera(MediaStreamTrack):
    """SIZE frames at 30 fps with pts 3000 apart (as a camera's at 90 kHz)."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    async def recv(self) -> av.VideoFrame:
        await asyncio.sleep(1 / 30)
        self.count += 1
        frame = av.VideoFrame.from_ndarray(np.full((SIZE[1], SIZE[0], 3), 200, np.uint8), format="rgb24")
        frame.pts = 3000 * self.count
        return frame


class _Transport:
    state = "connected"  # all RTCRtpSender's constructor asks of it; these tests never send


def sender_of(track: EncodedVideoTrack) -> RTCRtpSender:
    """A real aiortc sender bound to `track`, whose RTCP the tests feed in by hand."""
    sender = RTCRtpSender(track, _Transport())  # type: ignore[arg-type]
    track.bind(sender)
    return sender


def pli(sender: RTCRtpSender) -> RtcpPsfbPacket:
    return RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1, media_ssrc=sender._ssrc)


def remb(sender: RTCRtpSender, bps: int) -> RtcpPsfbPacket:
    return RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=1, media_ssrc=0, fci=pack_remb_fci(bps, [sender._ssrc]))


Packets = list[tuple[int, bool, bytes]]  # (pts, keyframe, data) as a consumer received them


async def take(track: EncodedVideoTrack, seconds: float, out: Packets) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        packet = await asyncio.wait_for(track.recv(), 2.0)
        out.append((packet.pts, is_keyframe(bytes(packet)), bytes(packet)))


def decodes(packets: Packets) -> bool:
    """libvpx decodes every packet, from the first, into one picture each."""
    decoder = av.CodecContext.create("libvpx", "r")
    return all(len(decoder.decode(av.Packet(data))) == 1 for _, _, data in packets)


def keyframes(packets: Packets) -> list[int]:
    return [i for i, (_, key, _) in enumerate(packets) if key]


def run(scenario: Callable[[MaskEngine], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        engine = MaskEngine(Metrics(), MovingMasker)
        engine.attach(Camera())
        try:
            return await scenario(engine)
        finally:
            await engine.close()

    return asyncio.run(main())


def test_two_consumers_get_the_same_decodable_packets_from_one_encode(monkeypatch: pytest.MonkeyPatch) -> None:
    encodes = []
    encode = encoding._WholeFrameVp8.encode
    monkeypatch.setattr(encoding._WholeFrameVp8, "encode", lambda self, *a: encodes.append(1) or encode(self, *a))

    async def scenario(engine: MaskEngine) -> tuple[Packets, Packets, Metrics]:
        a, b = engine.track(), engine.track()
        got_a: Packets = []
        got_b: Packets = []
        await asyncio.gather(take(a, 1.5, got_a), take(b, 1.5, got_b))
        return got_a, got_b, engine._metrics

    got_a, got_b, metrics = run(scenario)
    assert len(got_b) > 30
    for got in (got_a, got_b):
        assert got[0][1]                                    # from a keyframe on
        assert all(p < q for (p, _, _), (q, _, _) in zip(got, got[1:]))  # strictly increasing pts
        assert decodes(got)
    first = next(i for i, (pts, _, _) in enumerate(got_a) if pts == got_b[0][0])
    common = min(len(got_a) - first, len(got_b))
    assert got_a[first:first + common] == got_b[:common]   # the same packets, none missing
    # One encode per picture sent, not one per consumer.
    distinct = {pts for pts, _, _ in got_a + got_b}
    assert len(distinct) <= len(encodes) <= len(distinct) + 2
    stages = metrics.snapshot()
    assert metrics.frames_out <= len(distinct) + 2         # frames handed to the (one) encoder
    assert stages["stage_count"]["encode"] == len(encodes)  # the encode stage: each real encode, timed
    assert 0 < stages["stage_sum_ms"]["encode"] / len(encodes) < 50


def test_a_later_consumer_starts_at_a_forced_keyframe_that_the_first_sees_in_place() -> None:
    async def scenario(engine: MaskEngine) -> tuple[Packets, Packets]:
        a, b = engine.track(), engine.track()
        got_a: Packets = []
        got_b: Packets = []
        await take(a, 0.6, got_a)
        await asyncio.gather(take(a, 0.6, got_a), take(b, 0.5, got_b))
        return got_a, got_b

    got_a, got_b = run(scenario)
    assert got_b and got_b[0][1]                 # b's first packet is a keyframe ...
    joined = next(i for i, (pts, _, _) in enumerate(got_a) if pts == got_b[0][0])
    assert joined > 10 and joined in keyframes(got_a)  # ... forced mid-stream (VP8's own interval is 3000 frames)
    common = min(len(got_a) - joined, len(got_b))
    assert common > 5 and got_a[joined:joined + common] == got_b[:common]
    assert decodes(got_a) and decodes(got_b)


def test_a_pli_on_one_consumers_sender_forces_a_keyframe_and_remb_sets_the_lowest_bitrate() -> None:
    async def scenario(engine: MaskEngine) -> tuple[Packets, Packets, list[int]]:
        a, b = engine.track(), engine.track()
        sender_a, sender_b = sender_of(a), sender_of(b)
        got_a: Packets = []
        got_b: Packets = []
        await asyncio.gather(take(a, 0.5, got_a), take(b, 0.5, got_b))
        mark = len(got_a)
        await sender_b._handle_rtcp_packet(pli(sender_b))  # as the DTLS transport routes it
        await asyncio.gather(take(a, 0.3, got_a), take(b, 0.3, got_b))
        bitrates = [engine.avatar_encoder._bitrate()]  # no estimate yet: aiortc's default
        await sender_a._handle_rtcp_packet(remb(sender_a, 1_000_000))
        await sender_b._handle_rtcp_packet(remb(sender_b, 300_000))
        await sender_a._handle_rtcp_packet(remb(sender_b, 200_000))  # b's SSRC only: not a's estimate
        bitrates.append(engine.avatar_encoder._bitrate())
        mark_remb = len(got_a)
        await take(a, 0.3, got_a)  # the codec restarts at the new rate: with a keyframe
        b.stop()
        bitrates.append(engine.avatar_encoder._bitrate())
        return got_a, mark, mark_remb, got_b, bitrates

    got_a, mark, mark_remb, got_b, bitrates = run(scenario)
    after_pli = got_a[mark - 1:mark_remb]
    assert not after_pli[0][1] and 1 <= min(keyframes(after_pli)) <= 3  # a keyframe within a frame or two
    assert bitrates == [500_000, 300_000, 1_000_000]  # the lowest estimate; b gone, a's
    assert keyframes(got_a[mark_remb:]) and decodes(got_a) and decodes(got_b)


def test_a_stalled_consumer_does_not_hold_back_the_other_and_resumes_at_a_keyframe() -> None:
    async def scenario(engine: MaskEngine) -> tuple[Packets, Packets, int, int]:
        a, b = engine.track(), engine.track()
        got_a: Packets = []
        got_b: Packets = []
        await asyncio.gather(take(a, 0.5, got_a), take(b, 0.5, got_b))
        before = len(got_b)
        await take(a, 0.6, got_a)          # b reads nothing meanwhile (~18 frames)
        queued = len(b._queue)
        await asyncio.gather(take(a, 0.5, got_a), take(b, 0.5, got_b))
        return got_a, got_b, before, queued

    got_a, got_b, before, queued = run(scenario)
    assert queued <= QUEUE_PACKETS
    pts_a = [pts for pts, _, _ in got_a]
    assert all(p < q for p, q in zip(pts_a, pts_a[1:])) and decodes(got_a)  # a lost nothing
    assert len(got_a) >= 40
    resumed = got_b[before:]
    assert resumed[0][1] and decodes(got_b)  # b picks up at a keyframe, decodable throughout
    assert resumed[0][0] > got_b[before - 1][0] + 0.5 * 90000 * 0.8


def test_consumers_end_with_the_engine_and_nobody_means_no_encoding() -> None:
    async def scenario(engine: MaskEngine) -> tuple[int, int, bool]:
        a = engine.track()
        await take(a, 0.3, [])
        a.stop()
        encodes = engine.avatar_encoder.encodes
        await asyncio.sleep(0.4)
        idle = engine.avatar_encoder.encodes - encodes
        b = engine.track()
        await take(b, 0.2, [])
        waiting = asyncio.ensure_future(b.recv())
        await asyncio.sleep(0)
        await engine.close()
        try:
            await asyncio.wait_for(waiting, 1.0)
            ended = False
        except MediaStreamError:
            ended = True
        return idle, encodes, ended

    idle, encodes, ended = run(scenario)
    assert encodes > 0 and idle <= 1 and ended


def test_reports_carry_the_pts_of_the_packet_they_come_with() -> None:
    async def scenario(engine: MaskEngine) -> list[tuple[int, dict[str, Any]]]:
        a = engine.track()
        reports: list[dict[str, Any]] = []
        a.on_frame = reports.append
        pairs = []
        end = time.monotonic() + 0.8
        while time.monotonic() < end:
            count = len(reports)
            packet = await a.recv()
            if len(reports) > count:
                pairs.append((packet.pts, reports[-1]))
        return pairs

    pairs = run(scenario)
    assert len(pairs) > 15
    for pts, report in pairs:
        assert report["pts"] == pts, (pts, report)
        assert report["input_pts"] % 3000 == 0 and report["sent"] >= report["received"]



def test_the_avatar_options_take_effect_over_aiortcs_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """libvpx is deterministic on one thread: with no options of ours the shared encoder's
    stream is aiortc's byte for byte; with AVATAR_OPTIONS it is another, which decodes."""
    from aiortc.codecs.vpx import Vp8Encoder

    class Aiortcs(Vp8Encoder):   # aiortc's encoder, its frames whole as ours are
        @classmethod
        def _packetize(cls, buffer: bytes, picture_id: int) -> list[bytes]:
            return [buffer]

    rng = np.random.default_rng(1)
    frames = []
    for k in range(12):   # noisy pictures, which the denoiser would work on
        frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8), format="rgb24")
        frame.pts, frame.time_base = 3000 * k, fractions.Fraction(1, 90000)
        frames.append(frame)

    def stream(encoder: Vp8Encoder) -> list[bytes]:
        return [b"".join(encoder.encode(f)[0]) for f in frames]

    ours = stream(encoding._WholeFrameVp8())
    assert ours != stream(Aiortcs())
    decoder = av.CodecContext.create("libvpx", "r")
    assert sum(len(decoder.decode(av.Packet(data))) for data in ours) == len(frames)
    monkeypatch.setattr(encoding, "AVATAR_OPTIONS", {})
    assert stream(encoding._WholeFrameVp8()) == stream(Aiortcs())
