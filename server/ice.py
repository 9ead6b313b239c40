"""ICE configuration: STUN/TURN servers from the command line, and the loopback candidate.

By default no ICE server is used, so a consultation works offline (aiortc would
otherwise default to a public STUN server). On a host whose only interface is loopback,
aioice gathers no candidate at all (it skips 127.0.0.1), and no connection is possible;
`enable_loopback_candidate()` makes it offer 127.0.0.1 too. aioice has no option for
this, so it is a patch of `aioice.ice.get_host_addresses`, applied only when the relay
serves on a loopback address (its peers are then on the same host by construction).
Chromium needs `--allow-loopback-in-peer-connection` to pair with such a candidate.
"""
from __future__ import annotations

import ipaddress

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
