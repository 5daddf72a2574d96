"""``/v1/auth/token/*``: create, look up, renew and revoke tokens.

A token value appears in exactly one response: the one that created it.
"""

from __future__ import annotations

from aiohttp import web

from vaultside.api.body import json_response, no_content, read_json, read_model
from vaultside.api.models import Renew, RenewSelf, TokenCreate, TokenOrAccessor
from vaultside.api.state import SERVICES, authorize
from vaultside.auth.tokens import TokenInfo
from vaultside.errors import InvalidRequestError, NotFoundError, PermissionDeniedError


def _auth_body(token: str | None, info: TokenInfo) -> dict[str, object]:
    shown = info.to_json()
    body: dict[str, object] = {
        "accessor": info.accessor,
        "policies": list(info.policies),
        "expire_time": shown.get("expire_time"),
        "ttl": info.ttl,
        "renewable": info.renewable,
    }
    if token is not None:
        # SECURITY: the only response that ever carries a token value.
        body = {"token": token, **body}
    return {"auth": body}


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
    return json_response(_auth_body(token, info))


async def lookup_self(request: web.Request) -> web.Response:
    """``GET /v1/auth/token/lookup-self`` (granted to every token by the ``default`` policy)."""
    info = await authorize(request, "auth/token/lookup-self", "read")
    return json_response({"data": info.to_json()})


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
    return json_response({"data": info.to_json()})


async def renew_self(request: web.Request) -> web.Response:
    """``POST /v1/auth/token/renew-self``."""
    own = await authorize(request, "auth/token/renew-self", "update")
    body = await read_model(request, RenewSelf, optional=True)
    info = await request.app[SERVICES].tokens.renew(own.accessor, body.increment)
    return json_response(_auth_body(None, info))


async def renew(request: web.Request) -> web.Response:
    """``POST /v1/auth/token/renew``: by accessor."""
    await authorize(request, "auth/token/renew", "update")
    body = await read_model(request, Renew)
    info = await request.app[SERVICES].tokens.renew(body.accessor, body.increment)
    return json_response(_auth_body(None, info))


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


def add_routes(app: web.Application) -> None:
    """Register the token routes."""
    r = app.router
    r.add_post("/v1/auth/token/create", create)
    r.add_get("/v1/auth/token/lookup-self", lookup_self, allow_head=False)
    r.add_post("/v1/auth/token/lookup", lookup)
    r.add_post("/v1/auth/token/renew-self", renew_self)
    r.add_post("/v1/auth/token/renew", renew)
    r.add_post("/v1/auth/token/revoke", revoke)
    r.add_post("/v1/auth/token/revoke-self", revoke_self)
