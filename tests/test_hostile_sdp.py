"""Hostile SDP offers: real offers of client/peer.py mutated and truncated, absurd codecs,
thousands of candidates, offers near the body limit, too many media sections, H.264 only.

Every one gets an answer (200) or a 400 with a JSON `error`, quickly; afterwards no peer
connection is left open (the registry's count, and every RTCPeerConnection closed) and
the thread count is back where it was.
"""
from __future__ import annotations

import asyncio
import gc
import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCRtpSender
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from client.peer import Peer
from dmask_rt.pipeline import FrameResult
from hostile import Background, auth, nothing_recorded, relay_server, threads_back_to
from server.app import MAX_BODY
from server.signaling import MAX_MEDIA_SECTIONS


class FlatMasker:
    """A stand-in masker: a flat grey 'avatar' at once."""

    closeup_size = None

    def process(self, rgb: np.ndarray) -> FrameResult:
        return FrameResult(np.full_like(rgb, 90), False, None)

    def close(self) -> None:
        pass


def open_peer_connections() -> list[RTCPeerConnection]:
    gc.collect()
    return [o for o in gc.get_objects() if isinstance(o, RTCPeerConnection) and o.connectionState != "closed"]


class Offers:
    """A relay and the real offers of both pages (client/peer.py) to mutate."""

    def __init__(self, tmp_path: Path) -> None:
        self.relay = Background(tmp_path, FlatMasker)
        self.sdp = {role: self.relay.call(self._offer(role)) for role in ("patient", "doctor")}

    async def _offer(self, role: str) -> str:
        peer = Peer(self.relay.served.base, self.relay.room, role, self.relay.tokens[role])
        await peer.pc.setLocalDescription(await peer.pc.createOffer())
        sdp = peer.pc.localDescription.sdp
        await peer.close()
        return sdp

    def post(self, role: str, sdp: object, limit_s: float = 10.0) -> tuple[int, dict]:
        """POST `sdp` as `role`'s offer; (status, JSON), checked to be an answer or a clear 400."""
        start = time.monotonic()
        status, body, ctype = self.relay.request(
            "POST", f"/api/rooms/{self.relay.room}/{role}/offer", json.dumps({"type": "offer", "sdp": sdp}).encode(),
            {"Content-Type": "application/json"}, self.relay.tokens[role])
        assert "json" in ctype, (status, body[:300])
        answer = json.loads(body)
        assert status in (200, 400), (status, answer)
        assert status == 200 and answer["type"] == "answer" or answer["error"], answer
        assert time.monotonic() - start < limit_s
        return status, answer

    def hang_up(self) -> None:
        for role, token in self.relay.tokens.items():
            status, _, _ = self.relay.request("POST", f"/api/rooms/{self.relay.room}/{role}/leave", b"", token=token)
            assert status == 200


@pytest.fixture
def offers(tmp_path: Path) -> Iterator[Offers]:
    offers = Offers(tmp_path)
    yield offers
    offers.hang_up()
    assert offers.relay.served.relay.rooms.peers == 0
    assert offers.relay.healthy()
    assert nothing_recorded(offers.relay.served)
    offers.relay.close()
    assert not open_peer_connections()


# --- fuzzed ---------------------------------------------------------------------------------------

MUTATIONS = st.lists(st.tuples(
    st.sampled_from(["delete", "duplicate", "replace", "number", "truncate", "swap"]),
    st.integers(0, 10_000), st.text(max_size=80) | st.sampled_from(["m=video 9 UDP/TLS/RTP/SAVPF 96", "a=rtpmap:96 VP8/0",
                                                                     "a=mid:", "a=setup:bogus", "c=IN IP4 999.1.1.1", "m=", "a=fingerprint:sha-256 00"]),
), min_size=1, max_size=6)


def mutate(sdp: str, mutations: list[tuple[str, int, str]]) -> str:
    lines = sdp.split("\r\n")
    for op, at, text in mutations:
        i = at % len(lines)
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "replace":
            lines[i] = text
        elif op == "number":   # every number of the line replaced by an absurd one
            lines[i] = re.sub(r"\d+", str(at * 7919 - 40_000), lines[i])
        elif op == "swap":
            j = (at * 31) % len(lines)
            lines[i], lines[j] = lines[j], lines[i]
        else:
            return "\r\n".join(lines)[: at % (len(sdp) + 1)]
        if not lines:
            return ""
    return "\r\n".join(lines)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(role=st.sampled_from(["patient", "doctor"]), mutations=MUTATIONS)
def test_mutated_and_truncated_real_offers(offers: Offers, role: str, mutations: list) -> None:
    status, _ = offers.post(role, mutate(offers.sdp[role], mutations))
    event(f"HTTP {status}")  # --hypothesis-show-statistics: how many mutants were still answered
    assert offers.relay.served.relay.rooms.peers <= 2


# --- hand-made ---------------------------------------------------------------------------------------

def _candidates(n: int) -> str:
    return "".join(f"a=candidate:{i} 1 udp {2_000_000_000 - i} 10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256} {1024 + i % 60000} typ host\r\n"
                   for i in range(n))


def _with_first_media(sdp: str, extra: str) -> str:
    """`extra` lines added at the end of the first media section."""
    head, first, rest = sdp.partition("\r\nm=")
    media, second, tail = rest.partition("\r\nm=")
    return f"{head}{first}{media}\r\n{extra.rstrip()}{second}{tail}"


def _fill(sdp: str, lines: Callable[[int], str]) -> str:
    """`sdp` with the most `lines(n)` in its first media section that its offer body (as JSON)
    takes under the body limit."""
    n = MAX_BODY // len(lines(1))
    while len(json.dumps({"type": "offer", "sdp": (filled := _with_first_media(sdp, lines(n)))})) >= MAX_BODY:
        n = int(n * 0.97)
    return filled


def test_absurd_offers_get_a_clear_400_or_an_answer(offers: Offers) -> None:
    patient = offers.sdp["patient"]
    video = patient[patient.index("m=video"):].split("\r\nm=")[0]
    codecs = "".join(f"a=rtpmap:{pt} {name}\r\n" for pt, name in
                     [(96, "X" * 2000 + "/90000"), (97, "VP8/0"), (98, "VP8/-1"), (99, "VP8/99999999999999999999"),
                      (200, "VP8/90000"), (100, "VP8"), (101, "/")])
    fmtp = "".join(f"a=fmtp:{pt} {junk}\r\n" for pt, junk in [(96, "apt=96"), (97, "apt=999"), (1000, "x=y"), (96, ";" * 500)])
    cases = {
        "absurd codecs": _with_first_media(patient, codecs + fmtp),
        "candidates up to the body limit": _fill(patient, _candidates),
        "mDNS and unresolvable candidates": _with_first_media(patient, "".join(
            f"a=candidate:{i} 1 udp 1 {name} 9 typ host\r\n" for i, name in enumerate(
                ["abc.local", "x" * 300 + ".local", "no.such.host.invalid", "::g", "0.0.0.0", "255.255.255.255"]))),
        "attributes up to the body limit": _fill(patient, lambda n: "a=x-junk:j\r\n" * n),
        "a duplicated mid": patient.replace("a=mid:1", "a=mid:0"),
        "no fingerprint": re.sub(r"a=fingerprint:[^\r]*\r\n", "", patient),
        "no ice credentials": re.sub(r"a=ice-(ufrag|pwd):[^\r]*\r\n", "", patient),
        "only the session": patient.split("\r\nm=")[0],
        "LF line ends": patient.replace("\r\n", "\n"),
        "NUL bytes": patient.replace("a=", "a\x00=", 5),
    }
    for name, sdp in cases.items():
        assert len(json.dumps({"type": "offer", "sdp": sdp})) < MAX_BODY, name
        status, answer = offers.post("patient", sdp)
        if name in ("only the session", "absurd codecs"):
            assert status == 400, (name, answer)
    status, answer = offers.post("patient", re.sub(r"a=group:BUNDLE \S+", "a=group:BUNDLE 9", patient))
    assert status == 400 and "BUNDLE" in answer["error"]  # was a 500, and a connection aiortc could not close
    status, answer = offers.post("patient", _with_first_media(patient, _candidates(5000)))
    assert status == 400 and "body larger than 64 KiB" in answer["error"]
    status, answer = offers.post("patient", patient + ("\r\n" + video) * MAX_MEDIA_SECTIONS)
    assert status == 400 and answer["error"] == f"at most {MAX_MEDIA_SECTIONS} media sections"
    for wrong in (None, 5, ["v=0"], {"sdp": patient}, ""):
        status, answer = offers.post("patient", wrong)
        assert status == 400


def test_an_h264_only_offer_is_refused(offers: Offers) -> None:
    async def h264_offer() -> str:
        pc = RTCPeerConnection()
        transceiver = pc.addTransceiver("video", "sendrecv")
        transceiver.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/H264"])
        pc.addTransceiver("audio", "sendrecv")
        pc.createDataChannel("dmask")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()
        return sdp

    sdp = offers.relay.call(h264_offer())
    assert "H264" in sdp and "VP8" not in sdp
    status, answer = offers.post("patient", sdp)
    assert status == 400 and "VP8" in answer["error"], answer


def test_failed_offers_leave_no_thread_or_connection_behind(offers: Offers) -> None:
    patient, doctor = offers.sdp["patient"], offers.sdp["doctor"]
    assert offers.post("patient", patient)[0] == 200   # one good connection, whose threads stay
    assert offers.post("doctor", doctor)[0] == 200
    time.sleep(0.5)
    baseline = offers.relay.call(threads_back_to(10_000))
    bad = [re.sub(r"a=fingerprint:[^\r]*\r\n", "", patient), patient.split("\r\nm=")[0] + "\r\nm=audio 9 X 0\r\n",
           _with_first_media(patient, "a=rtpmap:96 VP8/0\r\n")]
    for i in range(30):
        offers.post("patient" if i % 2 else "doctor", bad[i % len(bad)])
    assert offers.relay.served.relay.rooms.peers == 2
    assert offers.relay.call(threads_back_to(baseline)) <= baseline
    assert len(open_peer_connections()) == 2  # the two good ones, both sides' ends closed for the bad


def test_bad_offers_to_a_room_worker_get_the_same_400(tmp_path: Path) -> None:
    """`dmask serve` answers in each room's worker process: its refusals reach the page alike."""
    async def scenario() -> None:
        async with relay_server(tmp_path, room_workers=True) as served:
            room, tokens = await served.create_room()
            peer = Peer(served.base, room, "patient", tokens["patient"])
            await peer.pc.setLocalDescription(await peer.pc.createOffer())
            good = peer.pc.localDescription.sdp
            await peer.close()
            cases = {re.sub(r"a=group:BUNDLE \S+", "a=group:BUNDLE 9", good): "BUNDLE",
                     good.replace("VP8/90000", "H264/90000"): "VP8 only",
                     good.replace("a=mid:1", "a=mid:0"): "unusable offer"}
            for sdp, reason in cases.items():
                status, body, _ = await served.request("POST", f"/api/rooms/{room}/patient/offer",
                                                       json={"type": "offer", "sdp": sdp}, **auth(tokens["patient"]))
                assert status == 400 and reason in body["error"], (status, body)
            status, health, _ = await served.request("GET", "/healthz")
            assert status == 200 and health["peers"] == 0

    asyncio.run(scenario())
