"""Typed keys for what the aiohttp app and each request carry, and the seal state."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeVar

from aiohttp import web

from vaultside.api.clients import Client, ClientResolver
from vaultside.api.metrics import ApiMetrics
from vaultside.auth.tokens import TokenInfo
from vaultside.lifecycle import TaskSet
from vaultside.services import Services

T = TypeVar("T")

# Any run of non-blanks ending in "/" that is followed by a name: a path's directories.
_DIRECTORIES = re.compile(r"\S*/(?=[^/\s])")


@dataclass
class SealState:
    """What the unseal loop learned: shown by health and seal-status."""

    sealed: bool = True
    reason: str = "not unsealed yet"
    attempts: int = 0

    @property
    def public_reason(self) -> str:
        """``reason`` with every directory part removed (``/srv/x/vaultside.key`` →
        ``vaultside.key``): it is shown to unauthenticated clients; the log has it all."""
        return _DIRECTORIES.sub("", self.reason)


@dataclass
class AuditState:
    """Whether the last audit write failed (then state-changing requests pre-audit)."""

    degraded: bool = False


class Background(TaskSet):
    """Tasks the app started (rewrap, unseal retries); cancelled on shutdown."""


SERVICES = web.AppKey("services", Services)
SEAL_STATE = web.AppKey("seal_state", SealState)
METRICS = web.AppKey("metrics", ApiMetrics)
BACKGROUND = web.AppKey("background", Background)
AUDIT_STATE = web.AppKey("audit_state", AuditState)
# Who requests come from (throttle keys, denial summaries, audit ``client``).
CLIENTS = web.AppKey("clients", ClientResolver)
# The pre-serialised OpenAPI document (bytes), built once at startup.
OPENAPI_BODY = web.AppKey("openapi_body", bytes)
# True on the app of the dedicated metrics listener (``metrics.listen``).
METRICS_LISTENER = web.AppKey("metrics_listener", bool)

REQUEST_ID = web.RequestKey("request_id", str)
TOKEN = web.RequestKey("token", TokenInfo)
CLIENT = web.RequestKey("client", Client)
# "code: first public message" of the error response, for the audit record.
ERROR = web.RequestKey("error", str)
# Set by ``api.protocol`` on a request aiohttp's parser rejected: the exception's class name.
MALFORMED = web.RequestKey("malformed", str)
# The ``Expect`` header ``api.protocol`` took off the request, answered by a middleware.
EXPECT = web.RequestKey("expect", str)


def token_of(request: web.Request) -> TokenInfo:
    """The authenticated token of ``request`` (set by the auth middleware)."""
    return request[TOKEN]


async def authorize(request: web.Request, policy_path: str, capability: str) -> TokenInfo:
    """Check ``capability`` on ``policy_path`` for the request's token; 403 if denied."""
    info = request[TOKEN]
    await request.app[SERVICES].authorizer.check(info, policy_path, capability)
    return info


def configured(value: T | None, error: Exception) -> T:
    """``value``, or ``error`` raised when the optional service it is was not configured."""
    if value is None:
        raise error
    return value
