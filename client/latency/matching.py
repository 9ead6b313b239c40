"""Which camera frame each frame the doctor received came from.

Two hops, each keeping pts exactly up to a constant (mod 2^32, RTP's timestamp width):
patient -> relay (the reports' `input_pts`) and relay -> doctor (the reports' `pts`
against the doctor's received pts). See the package docstring for why this survives
re-encoding and the mask.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

MOD = 1 << 32
WINDOW = 300     # received pts used to find a hop's constant
MIN_VOTES = 5    # pairs that must agree on it
# The decoder hands back a frame's pts within a tick or two (time-base rounding); frames
# are thousands of ticks apart.
TOLERANCE = 8


@dataclass(frozen=True)
class FrameTiming:
    """One camera frame that reached the doctor (monotonic seconds, one machine's clock)."""

    index: int             # the camera's frame number
    captured: float
    relay_received: float  # the relay has the decoded camera frame
    relay_sent: float      # its avatar handed to the relay's encoder
    delivered: float       # the doctor has the decoded avatar
    delivered_pts: int     # as the doctor received it
    timings_ms: dict[str, float]

    @property
    def latency_ms(self) -> float:
        return (self.delivered - self.captured) * 1e3


def hop_offset(sent: Sequence[int], received: Sequence[int]) -> int | None:
    """c with received ~ sent - c (mod 2^32) for the most pairs; None if too few agree."""
    if not sent or not received:
        return None
    s = np.asarray(sent, np.int64) % MOD
    r = np.asarray(received[:WINDOW], np.int64) % MOD
    differences = np.sort(((s[None, :] - r[:, None]) % MOD).ravel())
    votes = (np.searchsorted(differences, differences + TOLERANCE, "right")
             - np.searchsorted(differences, differences - TOLERANCE, "left"))
    best = int(np.argmax(votes))
    if votes[best] < MIN_VOTES:  # a few frames agree with any constant: a new connection's first report
        return None
    near = differences[np.abs(differences - differences[best]) <= TOLERANCE]
    return int(np.median(near))


class _Nearest:
    """Values by key, looked up within `TOLERANCE` (mod 2^32)."""

    def __init__(self, items: Sequence[tuple[int, Any]]) -> None:
        items = sorted(((key % MOD, value) for key, value in items), key=lambda kv: kv[0])
        self._keys = np.array([k for k, _ in items], np.int64)
        self._values = [v for _, v in items]

    def get(self, key: int) -> Any:
        if not len(self._keys):
            return None
        key %= MOD
        i = int(np.searchsorted(self._keys, key))
        for j in (i - 1, i):
            if 0 <= j < len(self._keys) and abs(int(self._keys[j]) - key) <= TOLERANCE:
                return self._values[j]
        return None


def offsets(sent: Sequence[tuple[int, int, float]], reports: Sequence[dict[str, Any]],
            arrivals: Sequence[tuple[float, int]]) -> tuple[int, int] | None:
    """Both hops' constants (patient -> relay, relay -> doctor), once enough frames agree."""
    reports = [r for r in reports if r.get("input_pts") is not None]
    to_relay = hop_offset([pts for _, pts, _ in sent], [r["input_pts"] for r in reports])
    to_doctor = hop_offset([r["pts"] for r in reports], [pts for _, pts in arrivals])
    return None if to_relay is None or to_doctor is None else (to_relay, to_doctor)


def match(sent: Sequence[tuple[int, int, float]], reports: Sequence[dict[str, Any]],
          arrivals: Sequence[tuple[float, int]], hops: tuple[int, int] | None = None) -> list[FrameTiming]:
    """Camera frames (index, pts, capture time) matched to the doctor's arrivals (time, pts).

    Arrivals without a report (the relay repeating a picture, or "waiting") and camera
    frames the relay skipped have no match; the first arrival of a frame counts.
    `hops`: the constants from `offsets()` when already known (they hold for a connection).
    """
    hops = hops or offsets(sent, reports, arrivals)
    if hops is None:
        return []
    to_relay, to_doctor = hops
    by_output = _Nearest([(r["pts"], r) for r in reports if r.get("input_pts") is not None])
    by_pts = _Nearest([(pts, (k, t)) for k, pts, t in sent])
    matched: dict[int, FrameTiming] = {}
    for delivered, pts in arrivals:
        report = by_output.get((pts + to_doctor) % MOD)
        if report is None:
            continue
        camera = by_pts.get((report["input_pts"] + to_relay) % MOD)
        # a camera frame taken after the relay received its frame cannot be it: a chance
        # coincidence of pts (seen once or twice a rejoin in the soak, 70-115 s "early")
        if camera is None or camera[0] in matched or camera[1] > report["received"]:
            continue
        k, captured = camera
        matched[k] = FrameTiming(k, captured, report["received"], report["sent"], delivered, pts, report["timings_ms"])
    return sorted(matched.values(), key=lambda f: f.index)
