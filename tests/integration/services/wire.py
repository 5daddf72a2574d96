"""One HTTP request to a live server through urllib, and reading an audit log file.

The one request primitive the integration and security helpers build on (``api``/``call``
wrappers differ only in defaults: which token, which timeout, ``{}`` or ``None`` for an empty
body). A 4xx/5xx status is returned in the ``Reply``, never raised.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Reply:
    """A parsed HTTP response: status, headers (lower-case names) and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def json_or(self, empty: Any) -> Any:
        """The JSON body, or ``empty`` when there is no body."""
        return json.loads(self.body) if self.body else empty


def request(
    addr: str,
    method: str,
    path: str,
    *,
    token: str = "",
    body: object = None,
    raw_body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 15.0,
) -> Reply:
    """``method addr+path`` with ``Bearer token`` (no header when ``token`` is empty), ``body``
    as JSON (or ``raw_body`` as is) and extra ``headers``."""
    data = (
        raw_body if raw_body is not None else (None if body is None else json.dumps(body).encode())
    )
    req = urllib.request.Request(f"{addr}{path}", data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return Reply(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read())


def audit_file_records(path: Path) -> list[dict[str, Any]]:
    """Every record of one audit log file."""
    return [json.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
