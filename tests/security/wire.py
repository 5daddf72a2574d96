"""Talking to a live server at the byte level, and reading its audit log (h4's tests)."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.integration.services.vaultside_server import VaultsideServer


@dataclass
class Reply:
    """A parsed HTTP response: status, headers (lower-case names) and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


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
    data = (
        raw_body
        if raw_body is not None
        else (json.dumps(body).encode() if body is not None else None)
    )
    req = urllib.request.Request(f"{server.addr}{path}", data=data, method=method)
    tok = server.root_token if token is None else token
    if tok:
        req.add_header("Authorization", f"Bearer {tok}")
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return Reply(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read())


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
    """Every record in the server's audit log so far."""
    path: Path = server.data_dir / "audit.log"
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line) for line in lines if line.strip()]


def records_for(server: VaultsideServer, request_id: str) -> list[dict[str, Any]]:
    """The audit records of one request (by ``X-Request-Id``)."""
    return [r for r in audit_records(server) if r.get("request_id") == request_id]
