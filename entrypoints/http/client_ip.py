"""Who the client is: the socket peer, or the address a trusted proxy forwarded."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.types import Scope

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ClientIPResolver:
    """``X-Forwarded-For`` is honoured only when the peer is a trusted proxy; then the
    client is the right-most address not itself a trusted proxy, since anything to its
    left was written by the client and may be forged."""

    def __init__(self, trusted_proxies: Iterable[str] = ()) -> None:
        self._trusted: tuple[Network, ...] = tuple(
            ipaddress.ip_network(p, strict=False) for p in trusted_proxies
        )

    def __call__(self, scope: Scope) -> str:
        client = scope.get("client")
        peer = client[0] if client else "unknown"
        if not self._trusted or not self._is_trusted(peer):
            return peer
        forwarded = [
            value.decode("latin-1") for key, value in scope["headers"] if key == b"x-forwarded-for"
        ]
        hops = [hop.strip() for line in forwarded for hop in line.split(",") if hop.strip()]
        for hop in reversed(hops):
            if not self._is_trusted(hop):
                return hop if _is_ip(hop) else peer
        return hops[0] if hops and _is_ip(hops[0]) else peer

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._trusted)


def limit_key(address: str) -> str:
    """What a per-IP limit counts: the address itself for IPv4, the whole /64 for IPv6,
    since one client is handed a /64 and may use any address in it."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return address


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
