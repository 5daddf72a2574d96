"""Talking to a live server at the byte level, and reading its audit log (h4's tests)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from tests.integration.services.vaultside_server import VaultsideServer
from tests.integration.services.wire import Reply, audit_file_records, request

__all__ = ["Reply", "audit_records", "call", "parse", "raw", "records_for"]


def call(
    server: VaultsideServer,
    method: str,
    path: str,
    body: object = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    raw_body: bytes | None = None,
) -> Reply:
    """One request through urllib; the root token unless ``token`` is given ("" for none)."""
    tok = server.root_token if token is None else token
    return request(
        server.addr, method, path, token=tok, body=body, raw_body=raw_body, headers=headers
    )


def raw(server: VaultsideServer, data: bytes, timeout: float = 10.0) -> bytes:
    """Send ``data`` on a fresh connection; everything the server sends until it closes."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(data)
        out = b""
        try:
            while chunk := sock.recv(65536):
                out += chunk
                if b"\r\n\r\n" in out and _complete(out):
                    break
        except TimeoutError:
            pass
    return out


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False


def parse(data: bytes) -> Reply:
    """The first response in ``data``."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Reply(status, headers, body)


def audit_records(server: VaultsideServer) -> list[dict[str, Any]]:
    """Every record in the server's audit log so far (none before the file exists)."""
    path: Path = server.data_dir / "audit.log"
    return audit_file_records(path) if path.exists() else []


def records_for(server: VaultsideServer, request_id: str) -> list[dict[str, Any]]:
    """The audit records of one request (by ``X-Request-Id``)."""
    return [r for r in audit_records(server) if r.get("request_id") == request_id]
