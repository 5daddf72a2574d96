"""Client identity (peer, trusted proxies, unix peer credentials) and denial summaries."""

from __future__ import annotations

import json
import os
import socket
from typing import Any

from aiohttp.test_utils import make_mocked_request

from vaultside.api.clients import ClientResolver

from .conftest import Api, ApiFactory


class _Transport:
    """The two extras the resolver reads from a connection."""

    def __init__(self, peer: object, sock: object = None) -> None:
        self._extra = {"peername": peer, "socket": sock}

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._extra.get(name, default)


def _request(peer: object, xff: list[str] | None = None, sock: object = None) -> Any:
    headers = [("X-Forwarded-For", v) for v in (xff or [])]
    from multidict import CIMultiDict

    return make_mocked_request(
        "GET", "/v1/secrets/a", headers=CIMultiDict(headers), transport=_Transport(peer, sock)
    )


def test_peer_address_is_the_client_and_forwarded_for_is_ignored_by_default() -> None:
    resolver = ClientResolver()
    client = resolver.resolve(_request(("10.1.2.3", 5555), ["198.51.100.7"]))
    assert (client.key, client.address, client.via) == ("10.1.2.3", "10.1.2.3", None)


def test_a_trusted_proxy_forwards_the_rightmost_untrusted_address() -> None:
    resolver = ClientResolver(["10.0.0.0/8", "192.168.1.1/32"])
    spoofed_then_real = ["203.0.113.66, 198.51.100.7", "192.168.1.1"]
    client = resolver.resolve(_request(("10.9.9.9", 5555), spoofed_then_real))
    assert (client.key, client.address, client.via) == ("198.51.100.7", "198.51.100.7", "10.9.9.9")
    # Without a header the proxy itself is the client; garbage means the proxy too.
    assert resolver.resolve(_request(("10.9.9.9", 1))).key == "10.9.9.9"
    assert resolver.resolve(_request(("10.9.9.9", 1), ["not-an-ip"])).key == "10.9.9.9"


def test_ipv6_clients_share_a_bucket_per_64() -> None:
    resolver = ClientResolver()
    a = resolver.resolve(_request(("2001:db8:1:2::1", 1, 0, 0)))
    b = resolver.resolve(_request(("2001:db8:1:2:ffff::9", 1, 0, 0)))
    assert a.key == b.key == "2001:db8:1:2::/64"
    assert a.address == "2001:db8:1:2::1"


def test_unix_socket_clients_are_keyed_by_peer_credentials() -> None:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with left, right:
        client = ClientResolver().resolve(_request("", sock=left))
    assert client.key == f"uid:{os.getuid()}"
    assert client.address == f"unix:uid={os.getuid()}"
    assert client.via == f"pid={os.getpid()}"


async def test_unidentified_denials_are_summarised_and_add_up(make_api: ApiFactory) -> None:
    api: Api = await make_api(audit={"summary_interval": 5.0})
    log = api.settings.resolve(api.settings.audit.file)  # type: ignore[arg-type]
    before = len(log.read_bytes().splitlines()) if log.exists() else 0
    for _ in range(20):
        assert (await api.client.get("/v1/secrets/a")).status == 403
    assert (await api.client.get("/v1/secrets/a", headers=api.auth())).status == 404
    records = [json.loads(x) for x in log.read_bytes().splitlines()[before:]]
    assert [r["status"] for r in records] == [403, 404]  # one denial in full, then the valid one
    await api.clock.advance(5.0)
    await api.services.audit.close()
    records = [json.loads(x) for x in log.read_bytes().splitlines()[before:]]
    summary = records[-1]
    assert summary["operation"] == "summary" and summary["client"] == "127.0.0.1"
    assert summary["extra"]["count"] == "19" and summary["extra"]["statuses"] == "403:19"
