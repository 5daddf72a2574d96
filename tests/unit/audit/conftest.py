"""Audit test helpers: events carrying generated (never literal) sensitive values."""

from __future__ import annotations

import secrets

import pytest

from vaultside.audit.events import AuditEvent
from vaultside.audit.hmac import AuditHasher


def make_event(i: int = 0, **sensitive: str) -> AuditEvent:
    return AuditEvent(
        time=1_700_000_000.0 + i,
        request_id=f"req-{i}",
        accessor="A" * 24,
        policies=["app", "default"],
        operation="GET",
        path=f"/v1/secrets/app/db{i}",
        status=200,
        client="10.0.0.1",
        latency_ms=1.25,
        extra={"route": "/v1/secrets/{path}"},
        sensitive=dict(sensitive),
    )


@pytest.fixture
def hasher() -> AuditHasher:
    return AuditHasher(secrets.token_bytes(32))


@pytest.fixture
def planted() -> str:
    """A fake credential generated at test time."""
    return "vs." + secrets.token_urlsafe(32)
