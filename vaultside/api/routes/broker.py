"""``/v1/broker``: secrets read from Vault/OpenBao through a named broker.

``GET /v1/broker/{broker}/{mount}/{path}[?version=N]`` needs ``read`` on the policy path
``broker/{broker}/{mount}/{path}``; ``GET .../{path}:metadata`` returns KV v2 metadata (no
values). Apps need only a vaultside token: the broker's own Vault token never leaves it.
A value served from cache while the upstream is unreachable carries ``X-Vaultside-Stale: true``.
A dynamic secret carries its lease, with ``remaining_life`` (whole seconds the credentials are
known to stay valid) also in the ``X-Vaultside-Lease-Remaining`` header. KV v1 secrets have no
version: ``metadata.version`` is omitted for them.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from vaultside.api.body import json_response, query_int
from vaultside.api.responses import Response
from vaultside.api.spec import Operation, add_operations, path_param, query_param
from vaultside.api.state import SERVICES, authorize
from vaultside.broker.source import BrokerRegistry
from vaultside.clock import rfc3339
from vaultside.errors import InvalidRequestError
from vaultside.refs import MAX_VERSION, vault_ref

_METADATA = ":metadata"


class Lease(Response):
    """A dynamic secret's lease; ``remaining_life`` in whole seconds, rounded down."""

    lease_id: str
    lease_duration: int | float | None
    expires_time: str | None
    renewable: bool
    remaining_life: int | None


class BrokeredSecret(Response):
    """A brokered read: every field, ``metadata`` (version when known, kind, stale), lease."""

    data: dict[str, Any]
    metadata: dict[str, Any]
    lease: Lease | None


class BrokeredMetadata(Response):
    """``...:metadata``: the upstream's KV v2 metadata (no values)."""

    metadata: dict[str, Any]


def _registry(request: web.Request) -> BrokerRegistry:
    source = request.app[SERVICES].sources.get("vault")
    if not isinstance(source, BrokerRegistry):
        raise InvalidRequestError("no brokers are configured")
    return source


def _version(request: web.Request) -> int | None:
    unknown = sorted(set(request.query) - {"version"})
    if unknown:
        raise InvalidRequestError(f"unknown query parameter(s): {', '.join(unknown)[:200]}")
    text = request.query.get("version")
    if text is None or text == "0":
        return None
    return query_int(text, "version", 1, MAX_VERSION)


async def read_brokered(request: web.Request) -> web.Response:
    """One brokered secret (all fields), or its KV v2 metadata with ``:metadata``."""
    raw = request.match_info["path"]
    metadata = raw.endswith(_METADATA)
    path = raw.removesuffix(_METADATA) if metadata else raw
    ref = vault_ref(request.match_info["broker"], request.match_info["mount"], path)
    version = _version(request)
    await authorize(request, ref.policy_path, "read")
    broker = _registry(request).get(ref.broker or "")
    mount = ref.mount or ""
    if metadata:
        return json_response(BrokeredMetadata(metadata=await broker.read_metadata(mount, ref.path)))
    read = await broker.read(mount, ref.path, version)
    lease = None
    if read.lease_id is not None:
        lease = Lease(
            lease_id=read.lease_id,
            lease_duration=read.lease_duration,
            expires_time=rfc3339(read.expires_at) if read.expires_at else None,
            renewable=read.renewable,
            remaining_life=_whole(read.remaining_life),
        )
    meta: dict[str, object] = {"version": read.version} if read.version else {}
    meta |= {"kind": read.kind, "stale": read.stale}
    response = json_response(BrokeredSecret(data=read.data, metadata=meta, lease=lease))
    if lease is not None and read.remaining_life is not None:
        response.headers["X-Vaultside-Lease-Remaining"] = str(_whole(read.remaining_life))
    if read.stale:
        response.headers["X-Vaultside-Stale"] = "true"
        response.headers["Age"] = str(int(read.age))
    return response


def _whole(seconds: float | None) -> int | None:
    # Rounded down: a client planning on it never overestimates.
    return None if seconds is None else max(0, int(seconds))


OPERATIONS = (
    Operation("GET", "/v1/broker/{broker}/{mount}/{path}", "Read a Vault/OpenBao secret "
              "through a named broker (path may end with :metadata); X-Vaultside-Stale when "
              "served from cache.", "read on broker/{broker}/{mount}/{path}", read_brokered,
              response=BrokeredSecret | BrokeredMetadata, errors=(400, 403, 404, 502, 503),
              params=(path_param("broker"), path_param("mount"), path_param("path"),
                      query_param("version", {"type": "integer"})), head=True),
)  # fmt: skip


def add_routes(app: web.Application) -> None:
    """Register ``/v1/broker/...``."""
    add_operations(app, OPERATIONS, {"path": ".+"})
