"""Who a request comes from: the key of its throttle bucket and denial summary, and the
address its audit records show.

- TCP: the peer address. An IPv6 peer is keyed by its /64 (a host usually holds a whole
  /64, so it could otherwise mint fresh buckets); the audit record keeps the full address.
- A peer listed in ``server.trusted_proxies`` (CIDRs) is a proxy: the client is the rightmost
  ``X-Forwarded-For`` entry that is not itself a trusted proxy. From any other peer,
  ``X-Forwarded-For`` is ignored (anyone can send it).
- A unix-socket peer is keyed by its kernel-verified credentials (``SO_PEERCRED``): one bucket
  per uid, so local users do not share one bucket and one user cannot mint buckets by
  forking; the audit record shows uid and pid.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp import web

_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Client:
    """One request's origin: ``key`` groups its throttle and summaries, ``address`` is shown."""

    key: str
    address: str
    via: str | None = None  # the proxy it came through, or the unix peer's pid


def _parse(text: str) -> _IPAddress | None:
    try:
        addr = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _key(addr: _IPAddress) -> str:
    if isinstance(addr, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


def peer_credentials(request: web.Request) -> tuple[int, int] | None:
    """(uid, pid) of a unix-socket peer, from ``SO_PEERCRED``; None for other transports."""
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or getattr(sock, "family", None) != socket.AF_UNIX:
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    except (OSError, AttributeError):
        return None
    pid, uid, _gid = _PEERCRED.unpack(raw)
    return uid, pid


class ClientResolver:
    """Turns a request into its ``Client`` (see the module docstring)."""

    def __init__(self, trusted_proxies: Sequence[str] = ()) -> None:
        self._proxies: tuple[_IPNetwork, ...] = tuple(
            ipaddress.ip_network(cidr, strict=False) for cidr in trusted_proxies
        )

    def _trusted(self, addr: _IPAddress) -> bool:
        return any(addr in net for net in self._proxies)

    def resolve(self, request: web.Request) -> Client:
        """The request's client; never raises (an unknown peer becomes ``unknown``)."""
        remote = request.remote
        peer = _parse(remote) if remote else None
        if peer is None:
            cred = peer_credentials(request)
            if cred is not None:
                uid, pid = cred
                return Client(f"uid:{uid}", f"unix:uid={uid}", f"pid={pid}")
            return Client("unknown", remote or "unknown")
        if self._proxies and self._trusted(peer):
            forwarded = self._forwarded(request, peer)
            if forwarded is not None:
                return Client(_key(forwarded), str(forwarded), str(peer))
        return Client(_key(peer), str(peer))

    def _forwarded(self, request: web.Request, peer: _IPAddress) -> _IPAddress | None:
        headers = request.headers.getall("X-Forwarded-For", [])
        entries = [e for h in headers for e in h.split(",") if e.strip()]
        last_trusted: _IPAddress | None = None
        for entry in reversed(entries):
            addr = _parse(entry)
            if addr is None:
                # Garbage written by whoever sent it to the proxy: the proxy is the client.
                return last_trusted or peer
            if not self._trusted(addr):
                return addr
            last_trusted = addr
        return last_trusted
