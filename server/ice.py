"""ICE configuration: STUN/TURN servers from the command line, and the loopback candidate.

By default no ICE server is used, so a consultation works offline (aiortc would
otherwise default to a public STUN server).

The pages get their own configuration (`PageIce`): the STUN servers, and with a TURN
secret shared with the TURN server (coturn's `use-auth-secret`), credentials minted per
room that expire, by the TURN REST convention:

    username   = "<expiry, Unix seconds>:<room id>"
    credential = base64(HMAC-SHA1(secret, username))

The TURN server recomputes the credential from its copy of the secret and refuses a
username whose expiry has passed, so a link's TURN access ends with its credentials and
no password is stored anywhere. Each (re)connecting page asks for fresh ones. On a host whose only interface is loopback,
aioice gathers no candidate at all (it skips 127.0.0.1), and no connection is possible;
`enable_loopback_candidate()` makes it offer 127.0.0.1 too. aioice has no option for
this, so it is a patch of `aioice.ice.get_host_addresses`, applied only when the relay
serves on a loopback address (its peers are then on the same host by construction).
Chromium needs `--allow-loopback-in-peer-connection` to pair with such a candidate.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import time
from dataclasses import dataclass, field
from typing import Any

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer

_SCHEMES = ("stun", "stuns", "turn", "turns")
_original_get_host_addresses = aioice.ice.get_host_addresses


def rtc_configuration(urls: list[str], username: str | None = None, credential: str | None = None) -> RTCConfiguration:
    """An RTCConfiguration with exactly these ICE servers (none: host candidates only).

    `username`/`credential` apply to the turn:/turns: URLs.
    """
    servers = []
    for url in urls:
        scheme = url.split(":", 1)[0].lower()
        if scheme not in _SCHEMES or ":" not in url:
            raise ValueError(f"{url!r}: an ICE server URL starts with one of {', '.join(s + ':' for s in _SCHEMES)}")
        if scheme.startswith("turn"):
            servers.append(RTCIceServer(urls=url, username=username, credential=credential))
        else:
            servers.append(RTCIceServer(urls=url))
    return RTCConfiguration(iceServers=servers)


def turn_rest_credentials(secret: str, name: str, ttl_s: float, now: float | None = None) -> tuple[str, str]:
    """(username, credential) valid for `ttl_s` seconds from `now` (module docstring)."""
    expiry = int((time.time() if now is None else now) + ttl_s)
    username = f"{expiry}:{name}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


@dataclass(frozen=True)
class PageIce:
    """What the patient's and the doctor's pages use to connect (module docstring)."""

    stun_urls: list[str] = field(default_factory=list)
    turn_urls: list[str] = field(default_factory=list)
    turn_secret: str | None = None
    turn_ttl_s: float = 6 * 3600.0
    relay_only: bool = False    # the pages use TURN relay candidates only

    def __post_init__(self) -> None:
        for url in self.turn_urls:
            if url.split(":", 1)[0].lower() not in ("turn", "turns") or ":" not in url:
                raise ValueError(f"{url!r}: a TURN URL starts with turn: or turns:")
        if bool(self.turn_urls) != bool(self.turn_secret):
            raise ValueError("--turn-url and --turn-secret go together")
        if self.relay_only and not self.turn_urls:
            raise ValueError("--relay-only needs a TURN server (--turn-url and --turn-secret)")
        if self.turn_ttl_s <= 0:
            raise ValueError("--turn-ttl must be positive")

    def for_room(self, room_id: str, now: float | None = None) -> dict[str, Any]:
        """The page's RTCConfiguration (as JSON): STUN, and TURN with fresh credentials for this room."""
        servers: list[dict[str, Any]] = [{"urls": url} for url in self.stun_urls]
        if self.turn_secret:
            username, credential = turn_rest_credentials(self.turn_secret, room_id, self.turn_ttl_s, now)
            servers.append({"urls": list(self.turn_urls), "username": username, "credential": credential})
        return {"iceServers": servers, "iceTransportPolicy": "relay" if self.relay_only else "all"}


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _with_loopback(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    addresses = _original_get_host_addresses(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
    if use_ipv4 and "127.0.0.1" not in addresses:
        addresses.append("127.0.0.1")
    return addresses


def enable_loopback_candidate() -> None:
    """Make every ICE agent of this process also gather a 127.0.0.1 host candidate."""
    aioice.ice.get_host_addresses = _with_loopback


def loopback_candidate_enabled() -> bool:
    return aioice.ice.get_host_addresses is _with_loopback
