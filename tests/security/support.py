"""Helpers for the security suite: raw API calls that never raise on 4xx, narrow tokens,
audit records (``wire.audit_records``), and a loopback HTTP listener that records what it
receives."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.integration.services.vaultside_server import VaultsideServer
from tests.integration.services.wire import request

from .wire import audit_records

__all__ = ["api", "audit_records", "errors", "listener", "ok", "token_with"]


def api(
    server: VaultsideServer, method: str, path: str, body: object = None, token: str = ""
) -> tuple[int, Any]:
    """``(status, JSON body or {})`` of one request; 4xx/5xx are returned, not raised."""
    reply = request(
        server.addr, method, f"/v1/{path}", token=token or server.root_token, body=body,
        headers={"Content-Type": "application/json"}, timeout=60,
    )  # fmt: skip
    return reply.status, reply.json_or({})


def ok(server: VaultsideServer, method: str, path: str, body: object = None) -> Any:
    """A root request that must succeed."""
    status, doc = api(server, method, path, body)
    assert status < 300, (status, doc)
    return doc


def token_with(
    server: VaultsideServer, name: str, rules: list[dict[str, object]]
) -> dict[str, Any]:
    """A token whose only (non-default) policy is ``name`` = ``rules``; the ``auth`` object."""
    ok(server, "PUT", f"sys/policies/{name}", {"rules": rules})
    auth: dict[str, Any] = ok(server, "POST", "auth/token/create", {"policies": [name]})["auth"]
    return auth


def errors(doc: Any) -> str:
    """Every error message of a response, joined."""
    return " | ".join(doc.get("errors", [])) if isinstance(doc, dict) else ""


@dataclass
class Listener:
    """A loopback HTTP server recording (path, body) of every POST; answers per path."""

    answers: dict[str, tuple[int, dict[str, str]]] = field(default_factory=dict)
    seen: list[tuple[str, bytes]] = field(default_factory=list)
    port: int = 0

    def url(self, path: str) -> str:
        """``http://127.0.0.1:PORT/path``."""
        return f"http://127.0.0.1:{self.port}{path}"

    def paths(self) -> list[str]:
        """The paths requested so far, in order."""
        return [p for p, _ in self.seen]


@contextmanager
def listener(answers: dict[str, tuple[int, dict[str, str]]] | None = None) -> Iterator[Listener]:
    """Run a ``Listener`` on 127.0.0.1 in a thread for the ``with`` block."""
    state = Listener(answers=dict(answers or {}))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            state.seen.append((self.path, self.rfile.read(length)))
            status, headers = state.answers.get(self.path, (204, {}))
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
