"""``/v1/auth/token/*``: create, look up, renew and revoke tokens.

A token value appears in exactly one response: the one that created it.
"""

from __future__ import annotations

from aiohttp import web

from vaultside.api.body import json_response, no_content, read_json, read_model
from vaultside.api.models import Renew, RenewSelf, TokenCreate, TokenOrAccessor
from vaultside.api.responses import Response, TokenAuth, TokenTime, token_auth
from vaultside.api.spec import Operation, add_operations
from vaultside.api.state import SERVICES, authorize
from vaultside.auth.tokens import TokenInfo
from vaultside.errors import InvalidRequestError, NotFoundError, PermissionDeniedError


class TokenDescription(Response):
    """What a token may do and until when (never the token itself)."""

    accessor: str
    policies: list[str]
    display_name: str
    creation_time: TokenTime
    expire_time: TokenTime
    num_uses_left: int | None
    parent_accessor: str | None
    renewable: bool
    ttl: int | float | None
    meta: dict[str, str]


class TokenLookup(Response):
    """``{"data": TokenDescription}``: lookup and lookup-self."""

    data: TokenDescription


def _lookup(info: TokenInfo) -> web.Response:
    return json_response(TokenLookup(data=TokenDescription.model_validate(info.to_json())))


async def create(request: web.Request) -> web.Response:
    """``POST /v1/auth/token/create``: a child of the caller's token."""
    parent = await authorize(request, "auth/token/create", "create")
    body = await read_model(request, TokenCreate)
    token, info = await request.app[SERVICES].tokens.create(
        parent=parent,
        policies=list(body.policies),
        ttl=body.ttl,
        max_uses=body.max_uses,
        display_name=body.display_name,
        renewable=body.renewable,
        meta=dict(body.meta),
    )
    return json_response(token_auth(token, info))


async def lookup_self(request: web.Request) -> web.Response:
    """``GET /v1/auth/token/lookup-self`` (granted to every token by the ``default`` policy)."""
    info = await authorize(request, "auth/token/lookup-self", "read")
    return _lookup(info)


async def lookup(request: web.Request) -> web.Response:
    """``POST /v1/auth/token/lookup``: by token or accessor."""
    await authorize(request, "auth/token/lookup", "read")
    body = await read_model(request, TokenOrAccessor)
    tokens = request.app[SERVICES].tokens
    if body.token is not None:
        try:
            info = await tokens.lookup(body.token)
        except PermissionDeniedError:
            # The caller is allowed to look up; the token they asked about is what is bad.
            raise NotFoundError("no such token, or it is no longer valid") from None
    else:
        info = await tokens.lookup_accessor(body.accessor or "")
    return _lookup(info)


async def renew_self(request: web.Request) -> web.Response:
    """``POST /v1/auth/token/renew-self``."""
    own = await authorize(request, "auth/token/renew-self", "update")
    body = await read_model(request, RenewSelf, optional=True)
    info = await request.app[SERVICES].tokens.renew(own.accessor, body.increment)
    return json_response(token_auth(None, info))


async def renew(request: web.Request) -> web.Response:
    """``POST /v1/auth/token/renew``: by accessor."""
    await authorize(request, "auth/token/renew", "update")
    body = await read_model(request, Renew)
    info = await request.app[SERVICES].tokens.renew(body.accessor, body.increment)
    return json_response(token_auth(None, info))


async def revoke(request: web.Request) -> web.Response:
    """``POST /v1/auth/token/revoke``: by token or accessor, children included."""
    await authorize(request, "auth/token/revoke", "update")
    body = await read_model(request, TokenOrAccessor)
    tokens = request.app[SERVICES].tokens
    if body.token is not None:
        await tokens.revoke(body.token)
    else:
        await tokens.revoke_accessor(body.accessor or "")
    return no_content()


async def revoke_self(request: web.Request) -> web.Response:
    """``POST /v1/auth/token/revoke-self``: the caller's token and its children."""
    own = await authorize(request, "auth/token/revoke-self", "update")
    if await read_json(request, optional=True) != {}:
        raise InvalidRequestError("revoke-self takes no body")
    await request.app[SERVICES].tokens.revoke_accessor(own.accessor)
    return no_content()


_TOKEN = "/v1/auth/token"
OPERATIONS = (
    Operation("POST", f"{_TOKEN}/create", "Create a child token (only time it is shown).",
              "create on auth/token/create", create, body=TokenCreate, response=TokenAuth),
    Operation("GET", f"{_TOKEN}/lookup-self", "The caller's token info.",
              "read on auth/token/lookup-self (default policy)", lookup_self,
              response=TokenLookup, errors=(403,)),
    Operation("POST", f"{_TOKEN}/lookup", "Look up a token by token or accessor.",
              "read on auth/token/lookup", lookup, body=TokenOrAccessor, response=TokenLookup,
              errors=(400, 403, 404)),
    Operation("POST", f"{_TOKEN}/renew-self", "Extend the caller's token.",
              "update on auth/token/renew-self (default policy)", renew_self, body=RenewSelf,
              response=TokenAuth),
    Operation("POST", f"{_TOKEN}/renew", "Extend a token by accessor.",
              "update on auth/token/renew", renew, body=Renew, response=TokenAuth,
              errors=(400, 403, 404)),
    Operation("POST", f"{_TOKEN}/revoke", "Revoke a token and its children.",
              "update on auth/token/revoke", revoke, body=TokenOrAccessor, status=204),
    Operation("POST", f"{_TOKEN}/revoke-self", "Revoke the caller's token and children.",
              "update on auth/token/revoke-self (default policy)", revoke_self, status=204),
)  # fmt: skip


def add_routes(app: web.Application) -> None:
    """Register the token routes."""
    add_operations(app, OPERATIONS)
