"""Finding 9: connections that send half a request head (or go idle) are closed on time.

The attack held 1,000 half-header connections for 20 s with nothing closing them. Here a few
dozen connections against a server with a 2 s ``header_read_timeout`` (and a 3 s
``keepalive_timeout``) must all be closed by the server within a few seconds, while a normal
client keeps getting answers.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from tests.integration.services.process import remove_tree, short_tempdir
from tests.integration.services.vaultside_server import VaultsideServer, VaultsideServerFactory

from .wire import call

HEADER_TIMEOUT = 2.0
KEEPALIVE_TIMEOUT = 3.0
SLOW_CLIENTS = 40
HALF_HEAD = b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\nX-Slow: "


@pytest.fixture(scope="module")
def server() -> Iterator[VaultsideServer]:
    root = short_tempdir("slow")
    factory = VaultsideServerFactory(root)
    try:
        yield factory(
            VAULTSIDE_SERVER__HEADER_READ_TIMEOUT=HEADER_TIMEOUT,
            VAULTSIDE_SERVER__KEEPALIVE_TIMEOUT=KEEPALIVE_TIMEOUT,
        )
    finally:
        factory.close()
        remove_tree(root)


def _closed_after(sock: socket.socket, started: float, limit: float) -> float | None:
    """Seconds until the server closed ``sock`` (EOF or reset), None if still open at ``limit``."""
    sock.settimeout(max(0.1, started + limit - time.monotonic()))
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return time.monotonic() - started


def test_half_headers_are_dropped_after_the_header_read_timeout(server: VaultsideServer) -> None:
    started = time.monotonic()
    socks = []
    try:
        for _ in range(SLOW_CLIENTS):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            sock.sendall(HALF_HEAD)
            socks.append(sock)
        # The server still answers others while the slow clients hang on.
        assert call(server, "GET", "/v1/auth/token/lookup-self").status == 200
        closed = [_closed_after(s, started, HEADER_TIMEOUT + 8) for s in socks]
    finally:
        for sock in socks:
            sock.close()
    still_open = sum(1 for c in closed if c is None)
    assert still_open == 0, f"{still_open} of {SLOW_CLIENTS} half-header connections still open"
    assert max(c for c in closed if c is not None) < HEADER_TIMEOUT + 5


def test_a_trickled_head_does_not_extend_the_deadline(server: VaultsideServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /v1/sys/health HTTP/1.1\r\n")
        closed = None
        for i in range(int((HEADER_TIMEOUT + 6) / 0.5)):
            try:
                sock.sendall(f"X-{i}: y\r\n".encode())
            except (BrokenPipeError, ConnectionResetError):
                closed = time.monotonic() - started
                break
            time.sleep(0.5)
    assert closed is not None and closed < HEADER_TIMEOUT + 4, closed


def test_idle_kept_alive_connections_are_closed_after_the_keepalive_timeout(
    server: VaultsideServer,
) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\n")
        first = sock.recv(4096)
        assert first.startswith(b"HTTP/1.1 200"), first[:100]
        idle_from = time.monotonic()
        closed = _closed_after(sock, idle_from, KEEPALIVE_TIMEOUT + 8)
    assert closed is not None, "idle keep-alive connection never closed"
    assert KEEPALIVE_TIMEOUT - 1 < closed < KEEPALIVE_TIMEOUT + 5


def test_half_of_a_second_head_on_a_kept_alive_connection_is_dropped(
    server: VaultsideServer,
) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        sock.sendall(HALF_HEAD)
        started = time.monotonic()
        closed = _closed_after(sock, started, HEADER_TIMEOUT + 8)
    assert closed is not None and closed < HEADER_TIMEOUT + 4, closed
