"""Offer/answer for each role, and which track goes where.

Non-trickle: the browser sends its offer with all candidates; the answer comes back
with all of ours (aiortc gathers them in setLocalDescription).

The transceivers are created *before* the offer is applied, in the order the pages
offer them, so each m-line lands on a transceiver whose outgoing track is fixed here:

    patient: video sendrecv  camera in  -> masking engine; masked avatar out (own preview)
             audio sendrecv  microphone in -> doctor; doctor's audio out
             video sendonly  doctor's camera out (when the doctor shares it)
    doctor:  video sendonly  masked avatar out
             audio sendrecv  microphone in -> patient; patient's audio out
             video recvonly  doctor's camera in -> patient
             video sendonly  the avatar's eye close-up out (frames only while the doctor shows it)

The outgoing avatar and close-up are the engine's shared encoders' packets (one encode
for every connection; each sender is bound to take its receiver's keyframe requests).
The patient's camera track goes to the engine only: nothing sent on the doctor's
connection (or recorded) comes from anywhere but the engine and the audio relays.
"""
from __future__ import annotations

import asyncio
import logging
import re

import json
from typing import TYPE_CHECKING, Any

from aiortc import sdp as aiortc_sdp
from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcrtptransceiver import RTCRtpTransceiver

if TYPE_CHECKING:
    from .rooms import Room

log = logging.getLogger(__name__)

AUDIO_MAILBOX = 5          # 20 ms audio frames: up to 100 ms bridged, then dropped
MAX_MEDIA_SECTIONS = 5     # 4 media + 1 data channel
ANSWER_TIMEOUT_S = 15.0    # candidate gathering (a TURN server can be slow)
# Chrome starts a new video sender at ~300 kbps and scales 640x480 down for ~20 s;
# these make it start (and stay) at a bitrate the avatar and the camera need.
CHROME_BITRATES_KBPS = {"x-google-start-bitrate": 1200, "x-google-min-bitrate": 600, "x-google-max-bitrate": 2500}


class OfferError(ValueError):
    """The offer cannot be used (HTTP 400)."""


class Session:
    """One role's peer connection in a room, with its data channel and outgoing tracks."""

    def __init__(self, role: str, pc: RTCPeerConnection) -> None:
        self.role = role
        self.pc = pc
        self.channel: RTCDataChannel | None = None
        self.tracks: list[MediaStreamTrack] = []  # ours, stopped on close
        self.closed = False

    def send(self, message: dict[str, Any]) -> None:
        if self.channel is not None and self.channel.readyState == "open":
            self.channel.send(json.dumps(message, separators=(",", ":")))

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for track in self.tracks:
            track.stop()
        try:
            await self.pc.close()
        except Exception:  # noqa: BLE001 - aiortc's close() of a connection a bad offer left half set up
            log.exception("closing the %s's peer connection failed", self.role)


def _vp8_only(transceiver: RTCRtpTransceiver) -> None:
    # VP8 with aiortc's realtime libvpx settings: ~4 ms a 480p frame. aiortc's H.264
    # uses libx264's default preset (~30 ms a frame): never negotiated.
    codecs = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType in ("video/VP8", "video/rtx")]
    transceiver.setCodecPreferences(codecs)


def _check_offer(sdp: str) -> None:
    """Refuse, with a clear reason, offers that aiortc would half apply.

    The offer is read by aiortc's own SDP parser, so the checks see the mids and codecs
    exactly as `setRemoteDescription` will.
    """
    if not sdp.startswith("v=0"):
        raise OfferError("not an SDP offer")
    if sdp.count("\nm=") > MAX_MEDIA_SECTIONS:
        raise OfferError(f"at most {MAX_MEDIA_SECTIONS} media sections")
    try:
        description = aiortc_sdp.SessionDescription.parse(sdp)
    except Exception as err:  # noqa: BLE001 - its parser asserts, and raises KeyError, ValueError...
        raise OfferError(f"unusable offer: {err!r}") from err
    # aiortc moves every bundled section onto the transport of the first mid's section; that
    # section must be one aiortc gives a transport (audio, video, or the first data section),
    # else they are all left without one and its createAnswer() and close() fail.
    with_transport = [m.rtp.muxId for m in description.media if m.kind in ("audio", "video")]
    with_transport += [m.rtp.muxId for m in description.media if m.kind == "application"][:1]
    bundle = next((g for g in description.group if g.semantic == "BUNDLE" and g.items), None)
    if bundle is not None and bundle.items[0] not in with_transport:
        raise OfferError("the BUNDLE group's first mid names no audio, video or data section")
    # Said here, not as aiortc's "Failed to set remote video description send parameters".
    if any(m.kind == "video" and not any(c.mimeType.lower() == "video/vp8" and c.clockRate == 90000 for c in m.rtp.codecs)
           for m in description.media):
        raise OfferError("a video section without VP8: the relay's video is VP8 only (no H.264)")


def _wire_patient(room: Room, session: Session) -> RTCRtpTransceiver:
    pc = session.pc
    masked = room.engine.track()
    camera = pc.addTransceiver(masked, "sendrecv")
    masked.bind(camera.sender)
    doctor_audio = room.doctor_audio.subscribe(AUDIO_MAILBOX)
    audio = pc.addTransceiver(doctor_audio, "sendrecv")
    doctor_camera = room.doctor_video.subscribe(1)
    pc.addTransceiver(doctor_camera, "sendonly")
    session.tracks += [masked, doctor_audio, doctor_camera]
    return camera


def _wire_doctor(room: Room, session: Session, closeup: bool) -> RTCRtpTransceiver:
    """`closeup`: the page offers the close-up's section (aiortc cannot leave a transceiver unused)."""
    pc = session.pc
    masked = room.engine.track()
    video = pc.addTransceiver(masked, "sendonly")
    masked.bind(video.sender)
    patient_audio = room.patient_audio.subscribe(AUDIO_MAILBOX)
    pc.addTransceiver(patient_audio, "sendrecv")
    pc.addTransceiver("video", "recvonly")
    session.tracks += [masked, patient_audio]
    if closeup:
        closeup_track = room.engine.closeup_track()
        closeup_track.bind(pc.addTransceiver(closeup_track, "sendonly").sender)
        session.tracks.append(closeup_track)
    return video


def _start_receiving(room: Room, session: Session) -> None:
    """Connect the tracks the peer sends to where they may go (see the module docstring)."""
    received = {}
    for transceiver in session.pc.getTransceivers():
        if transceiver.mid is not None:
            received.setdefault(transceiver.kind, []).append(transceiver.receiver.track)
    videos, audios = received.get("video", []), received.get("audio", [])
    if session.role == "patient":
        room.engine.attach(videos[0])
        if audios:
            room.patient_audio.set_source(audios[0])
    else:
        if audios:
            room.doctor_audio.set_source(audios[0])
        if len(videos) > 1:
            room.doctor_video.set_source(videos[1])


def munge_answer(sdp: str) -> str:
    """Add Chrome's start/min/max bitrate to every VP8 payload type of the answer."""
    params = ";".join(f"{k}={v}" for k, v in CHROME_BITRATES_KBPS.items())
    lines = sdp.split("\r\n")
    vp8 = {m.group(1) for line in lines if (m := re.match(r"a=rtpmap:(\d+) VP8/90000", line))}
    out = []
    for line in lines:
        fmtp = re.match(r"a=fmtp:(\d+) ", line)
        if fmtp and fmtp.group(1) in vp8:
            line += ";" + params
            vp8.discard(fmtp.group(1))
        out.append(line)
        rtpmap = re.match(r"a=rtpmap:(\d+) VP8/90000", line)
        if rtpmap and rtpmap.group(1) in vp8 and not any(l.startswith(f"a=fmtp:{rtpmap.group(1)} ") for l in lines):
            out.append(f"a=fmtp:{rtpmap.group(1)} {params}")
            vp8.discard(rtpmap.group(1))
    return "\r\n".join(out)


async def answer(room: Room, role: str, offer_sdp: str, config: RTCConfiguration,
                 frame_reports: bool = False) -> tuple[Session, str]:
    """Open `role`'s peer connection in `room` from its offer; returns the answer SDP.

    `frame_reports`: the doctor's data channel also gets `{"type": "frame", ...}` for
    every new masked frame sent (ids and times only; see `MaskedVideoTrack.on_frame`).
    """
    _check_offer(offer_sdp)
    pc = RTCPeerConnection(config)
    session = Session(role, pc)

    @pc.on("datachannel")
    def on_datachannel(channel) -> None:  # type: ignore[no-untyped-def]
        session.channel = channel

        @channel.on("open")
        def on_open() -> None:
            room.greet(session)

        @channel.on("message")
        def on_message(data: str | bytes) -> None:
            room.receive(session, data)

        if channel.readyState == "open":
            room.greet(session)

    @pc.on("connectionstatechange")
    async def on_state() -> None:
        log.info("room %s: %s connection %s", room.id, role, pc.connectionState)
        if pc.connectionState in ("failed", "closed"):
            await room.leave(session)

    try:
        if role == "patient":
            sending = _wire_patient(room, session)
        else:
            sending = _wire_doctor(room, session, closeup=offer_sdp.count("\nm=video") >= 3)
        if frame_reports and role == "doctor":
            sending.sender.track.on_frame = lambda report: session.send({"type": "frame", **report})
        for transceiver in pc.getTransceivers():
            if transceiver.kind == "video":
                _vp8_only(transceiver)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        except Exception as err:  # aiortc raises ValueError, InternalError, OperationError...
            raise OfferError(f"unusable offer: {err}") from err
        if sending.mid is None:
            raise OfferError("the offer has no video section")
        try:
            await asyncio.wait_for(pc.setLocalDescription(await pc.createAnswer()), ANSWER_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise
        except Exception as err:  # an offer aiortc applied but cannot answer ("Media sections in answer do not match offer")
            raise OfferError(f"unusable offer: {err}") from err
    except BaseException:
        await session.close()
        raise
    _start_receiving(room, session)
    await room.join(session)
    return session, munge_answer(pc.localDescription.sdp)
