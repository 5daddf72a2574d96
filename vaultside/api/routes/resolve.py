"""``POST /v1/resolve``: secret references in, values out (for the plugin and sidecars).

References are dispatched by scheme through ``Services.sources`` (built in wiring), so a
new source kind is a new module plus one line there, not a change here.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from aiohttp import web
from pydantic import Field

from vaultside.api.body import json_response, read_model
from vaultside.api.models import ResolveBody
from vaultside.api.responses import Response
from vaultside.api.spec import Operation, add_operations
from vaultside.api.state import SERVICES, authorize
from vaultside.broker.base import ResolvedSecret
from vaultside.errors import InvalidRequestError
from vaultside.refs import SecretRef, parse_ref


class ResolvedValue(Response):
    """One resolved reference."""

    # SECURITY: repr=False keeps the value out of reprs, logs and tracebacks.
    value: Annotated[str, Field(repr=False)]
    version: str
    stale: bool
    lease_id: str | None


class Resolved(Response):
    """Each reference as given → its value."""

    values: dict[str, ResolvedValue]


async def resolve(request: web.Request) -> web.Response:
    """Resolve every reference; any failing one fails the request with its error."""
    body = await read_model(request, ResolveBody)
    sources = request.app[SERVICES].sources
    refs: dict[str, SecretRef] = {}
    for text in body.refs:
        refs[text] = parse_ref(text)
    # Authorize every reference before resolving any: 403 before 404, and no upstream calls
    # on behalf of a request that will be refused anyway.
    for ref in refs.values():
        await authorize(request, ref.policy_path, "read")
        if ref.scheme not in sources:
            raise InvalidRequestError(f"no secret source is configured for '{ref.scheme}:'")
    resolved: list[ResolvedSecret] = await asyncio.gather(
        *(sources[ref.scheme].resolve(ref) for ref in refs.values())
    )
    values = {
        text: ResolvedValue(
            value=item.value, version=item.version, stale=item.stale, lease_id=item.lease_id
        )
        for text, item in zip(refs, resolved, strict=True)
    }
    return json_response(Resolved(values=values))


OPERATIONS = (
    Operation("POST", "/v1/resolve", "Resolve secret references (kv:..., vault:...).",
              "read on each reference's policy path", resolve, body=ResolveBody,
              response=Resolved, errors=(400, 403, 404, 502, 503)),
)  # fmt: skip


def add_routes(app: web.Application) -> None:
    """Register ``/v1/resolve``."""
    add_operations(app, OPERATIONS)
