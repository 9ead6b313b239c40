"""One VP8 encode per picture, however many WebRTC connections show it.

aiortc's `RTCRtpSender` encodes a track's frames with an encoder of its own, so the
avatar sent to the doctor and back to the patient as a preview was encoded twice
(~4.5 ms of a core each, 640x480), the largest single cost of a consultation in the
relay. aiortc also sends pre-encoded media: a track whose recv() returns an `av.Packet`
is only packetized by its sender (`Vp8Encoder.pack`). So a `SharedEncoder` pulls the
pictures from one frame track (its pacing, keepalive, placeholders and pts are that
track's), encodes each once off the event loop, and hands the same packet to every
`EncodedVideoTrack` consumer.

A shared inter-coded stream is only decodable from a keyframe on, with nothing missing:

- a consumer gets every packet in order, from a keyframe: a new one forces a keyframe
  and gets nothing until it; one that falls behind (more than `QUEUE_PACKETS` queued)
  drops its queue and waits for the next keyframe, which it asks for when it reads again;
- a receiver's PLI or FIR forces a keyframe for all (aiortc ignores them for packets);
- the bitrate is the lowest of the receivers' REMB estimates, within aiortc's bounds.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import av
from aiortc import RTCRtpSender
from aiortc.codecs.vpx import DEFAULT_BITRATE, Vp8Encoder
from aiortc.mediastreams import VIDEO_TIME_BASE, MediaStreamError, MediaStreamTrack
from aiortc.rtp import RTCP_PSFB_APP, RTCP_PSFB_FIR, RTCP_PSFB_PLI, AnyRtcpPacket, RtcpPsfbPacket, unpack_remb_fci

from .metrics import Metrics

log = logging.getLogger(__name__)

#: Packets a consumer may have waiting (~110 ms at 36 fps). Its sender packs and sends a
#: packet at once, so only a stalled sender gets here; past it, it restarts at a keyframe.
QUEUE_PACKETS = 4


class FrameSource(Protocol):
    """A track of pictures (`media.MaskedVideoTrack`) with its per-frame reports."""

    on_frame: Callable[[dict[str, Any]], None] | None

    async def recv(self) -> av.VideoFrame: ...

    def stop(self) -> None: ...


#: libvpx options laid over aiortc's for a rendered picture. It has no sensor noise, so
#: aiortc's temporal denoiser (noise-sensitivity 4) only costs time, and the faster
#: speed step keeps the avatar's quality (figures in the README).
AVATAR_OPTIONS = {"noise-sensitivity": "0", "cpu-used": "-12"}


class _WholeFrameVp8(Vp8Encoder):
    """aiortc's own VP8 encoder — its libvpx settings (realtime, CBR, ...) but for
    AVATAR_OPTIONS, thread count, bitrate bounds and codec restart on a >10% bitrate
    change — returning each encoded frame whole instead of cut into RTP payloads: every
    consumer's sender packetizes it with its own picture ids (`Vp8Encoder.pack`)."""

    @property
    def codec(self) -> av.VideoCodecContext | None:
        # aiortc sets its options on a new context, then encodes: options apply when the
        # context opens at that first encode, so ours are laid over theirs until then.
        if self._context is not None and not self._context.is_open:
            self._context.options = {**self._context.options, **AVATAR_OPTIONS}
        return self._context

    @codec.setter
    def codec(self, context: av.VideoCodecContext | None) -> None:
        self._context = context

    @classmethod
    def _packetize(cls, buffer: bytes, picture_id: int) -> list[bytes]:
        return [buffer] if buffer else []


def is_keyframe(data: bytes) -> bool:
    """A VP8 frame's tag says whether it is a key frame (bit 0 of its first byte clear, RFC 6386 9.1)."""
    return bool(data) and not data[0] & 1


@dataclass(frozen=True)
class Encoded:
    """One encoded picture, as every consumer gets it."""

    packet: av.Packet             # pts in VIDEO_TIME_BASE (90 kHz), as its frame's
    keyframe: bool
    report: dict[str, Any] | None  # the source's per-frame report, when the picture was a new result


class SharedEncoder:
    """Encodes the pictures of one frame source once for all its consumers.

    Runs while it has consumers (a consumer joins at its first recv(), leaves when
    stopped); each run takes a new source track from `source` and a new codec.
    `stage_prefix` names its metrics (the encode time as `<prefix>encode`).
    """

    def __init__(self, source: Callable[[], FrameSource], metrics: Metrics, stage_prefix: str = "") -> None:
        self._source = source
        self._metrics = metrics
        self._stage = stage_prefix + "encode"
        self._consumers: list[EncodedVideoTrack] = []
        self._task: asyncio.Task[None] | None = None
        self._report: dict[str, Any] | None = None
        self._force_keyframe = False
        self.encodes = 0      # pictures encoded (tests count them)
        self.closed = False   # its source ended (the engine closed) or close(): consumers end

    def consumer(self) -> "EncodedVideoTrack":
        """A new track of this encoder's packets, for one RTCRtpSender."""
        return EncodedVideoTrack(self)

    def request_keyframe(self) -> None:
        """The next picture is encoded as a keyframe."""
        self._force_keyframe = True

    def _join(self, consumer: "EncodedVideoTrack") -> None:
        self._consumers.append(consumer)
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    def _leave(self, consumer: "EncodedVideoTrack") -> None:
        with contextlib.suppress(ValueError):
            self._consumers.remove(consumer)
        if not self._consumers and self._task is not None:
            self._task.cancel()  # nobody to encode for
            self._task = None

    def close(self) -> None:
        """Stop encoding for good; consumers end (MediaStreamError)."""
        self.closed = True
        if self._task is not None:
            self._task.cancel()
            self._task = None
        for consumer in tuple(self._consumers):
            consumer._wake()

    def _bitrate(self) -> int:
        """The lowest REMB estimate of the consumers that sent one (the encoder clamps it)."""
        estimates = [c.remb_bps for c in self._consumers if c.remb_bps is not None]
        return min(estimates) if estimates else DEFAULT_BITRATE

    def _on_report(self, report: dict[str, Any]) -> None:
        self._report = report  # made by the source's recv() for the picture it returns

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        source = self._source()
        source.on_frame = self._on_report
        codec = _WholeFrameVp8()
        try:
            while True:
                self._report = None
                frame = await source.recv()
                report = self._report
                force, self._force_keyframe = self._force_keyframe, False
                codec.target_bitrate = self._bitrate()  # set here, between encodes, not under the thread
                pts = frame.pts  # exact: libvpx's time base (PyAV rescales the frame) rounds it down by a tick
                start = time.perf_counter()
                try:
                    payloads, _ = await loop.run_in_executor(None, codec.encode, frame, force)
                except Exception:  # noqa: BLE001 - a failed encode must not end the video
                    log.exception("VP8 encode failed; starting a new encoder")
                    codec = _WholeFrameVp8()  # its first frame is a keyframe
                    continue
                self._metrics.stage(self._stage, (time.perf_counter() - start) * 1e3)
                self.encodes += 1
                if not payloads:
                    continue
                packet = av.Packet(payloads[0])
                packet.pts, packet.time_base = pts, VIDEO_TIME_BASE
                encoded = Encoded(packet, is_keyframe(payloads[0]), report)
                for consumer in tuple(self._consumers):
                    consumer._offer(encoded)
        except MediaStreamError:  # the source ended: its engine closed
            self.closed = True
        except asyncio.CancelledError:
            pass
        except Exception:  # noqa: BLE001 - its consumers end rather than freeze
            log.exception("shared encoder failed")
            self.closed = True
        finally:
            source.stop()
            for consumer in tuple(self._consumers):
                consumer._wake()


class EncodedVideoTrack(MediaStreamTrack):
    """A `SharedEncoder`'s packets for one sender, from a keyframe on, none missing.

    recv() never raises except `MediaStreamError` once stopped or once its encoder ended.
    `bind(sender)` lets the sender's receiver ask for keyframes and set the bitrate.
    """

    kind = "video"

    def __init__(self, encoder: SharedEncoder) -> None:
        super().__init__()
        self._encoder = encoder
        self._queue: deque[Encoded] = deque()
        self._ready = asyncio.Event()
        self._joined = False
        self._waiting_keyframe = True
        self._ask_keyframe = True
        self.remb_bps: int | None = None  # the receiver's latest estimate
        # Opt-in per-frame reports (times and ids, never pixels): see `media.MaskedVideoTrack.on_frame`.
        self.on_frame: Callable[[dict[str, Any]], None] | None = None

    async def recv(self) -> av.Packet:
        if self.readyState != "live" or self._encoder.closed:
            raise MediaStreamError
        if not self._joined:
            self._joined = True
            self._encoder._join(self)
        while not self._queue:
            if self._ask_keyframe:
                # Asked when reading, not when it fell behind: a stalled sender must
                # not force keyframes on every other consumer.
                self._ask_keyframe = False
                self._encoder.request_keyframe()
            self._ready.clear()
            await self._ready.wait()
            if self.readyState != "live" or self._encoder.closed:
                raise MediaStreamError
        encoded = self._queue.popleft()
        if self.on_frame is not None and encoded.report is not None:
            try:
                self.on_frame(encoded.report)
            except Exception:  # noqa: BLE001 - a report must not stop the video
                log.exception("encoded track: frame report failed")
        return encoded.packet

    def _offer(self, encoded: Encoded) -> None:
        if len(self._queue) >= QUEUE_PACKETS:
            # Fell behind: what is queued is useless without what must be dropped now.
            self._queue.clear()
            self._waiting_keyframe = self._ask_keyframe = True
        if self._waiting_keyframe and not encoded.keyframe:
            return
        if encoded.keyframe:  # in step from here: no keyframe to ask for
            self._waiting_keyframe = self._ask_keyframe = False
        self._queue.append(encoded)
        self._ready.set()

    def _wake(self) -> None:
        self._ready.set()

    def stop(self) -> None:
        super().stop()
        self._encoder._leave(self)
        self._wake()

    def bind(self, sender: RTCRtpSender) -> None:
        """Take keyframe requests (PLI, FIR) and REMB estimates from `sender`'s receiver.

        aiortc's sender only sets a flag for its own encoder on a PLI, which packets
        never use, and its REMB goes to that idle encoder too: this wraps the instance's
        RTCP handler (which the transport calls per packet) to act on the shared encoder
        first, then lets aiortc handle the packet as usual (RTT, NACK, stats).
        """
        handle = sender._handle_rtcp_packet

        async def handle_rtcp_packet(packet: AnyRtcpPacket) -> None:
            self._on_rtcp(packet, sender._ssrc)
            await handle(packet)

        sender._handle_rtcp_packet = handle_rtcp_packet  # type: ignore[method-assign]

    def _on_rtcp(self, packet: AnyRtcpPacket, ssrc: int) -> None:
        if not isinstance(packet, RtcpPsfbPacket):
            return
        if packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            self._encoder.request_keyframe()
        elif packet.fmt == RTCP_PSFB_APP:
            with contextlib.suppress(ValueError):  # an APP packet that is not a REMB
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
                if ssrc in ssrcs:
                    self.remb_bps = bitrate
