"""``/v1/auth/jwt/*``: log in with a signed JWT (a Kubernetes ServiceAccount token), and the
roles that say which JWTs get which policies (managed with ``sudo``).

The login takes no token; it is behind the seal gate, a refusal is charged to the same
per-client auth-failure budget as a bad token, and it is audited like every request (the
record carries the new token's accessor and policies, or the reason for the refusal; never
the JWT; refusals are unidentified denials, summarised per client like any other).
"""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import Field, ValidationError

from vaultside.api.body import json_response, no_content, read_json, read_model, validation_error
from vaultside.api.middleware import client_of
from vaultside.api.models import StrictModel
from vaultside.api.responses import Response, TokenAuth, token_auth
from vaultside.api.spec import Operation, add_operations, path_param
from vaultside.api.state import SERVICES, TOKEN, authorize, configured
from vaultside.auth.jwt_auth import JwtAuth, JwtRole, validate_role_name
from vaultside.errors import InvalidRequestError, PermissionDeniedError

_ROLES = "/v1/auth/jwt/roles"


class JwtLogin(StrictModel):
    """``POST /v1/auth/jwt/login``."""

    role: Annotated[str, Field(min_length=1, max_length=128)]
    jwt: Annotated[str, Field(min_length=1, max_length=16 * 1024)]


class JwtRoleList(Response):
    """Every JWT role name."""

    roles: list[str]


class JwtRoleRead(JwtRole):
    """A JWT role and its name."""

    name: str


def _jwt(request: web.Request) -> JwtAuth:
    missing = InvalidRequestError("the JWT auth method is not configured (auth.jwt.issuer)")
    return configured(request.app[SERVICES].jwt, missing)


def _role_name(request: web.Request) -> str:
    return validate_role_name(request.match_info["name"])


async def login(request: web.Request) -> web.Response:
    """``POST /v1/auth/jwt/login``: ``{role, jwt}`` → a token with the role's policies."""
    services = request.app[SERVICES]
    method = _jwt(request)
    body = await read_model(request, JwtLogin)
    try:
        token, info = await method.login(body.role, body.jwt)
    except PermissionDeniedError as exc:
        # SECURITY: as for a bad token: validate first, charge only the failure (its answer
        # held for the client's slot, 429 beyond the budget).
        await services.throttle.failed(client_of(request).key, exc)
    request[TOKEN] = info  # the audit record names the new token's accessor and policies
    return json_response(token_auth(token, info))


async def list_roles(request: web.Request) -> web.Response:
    """``GET /v1/auth/jwt/roles`` (sudo on ``auth/jwt/roles``)."""
    await authorize(request, "auth/jwt/roles", "sudo")
    return json_response(JwtRoleList(roles=await _jwt(request).roles.list()))


async def read_role(request: web.Request) -> web.Response:
    """``GET /v1/auth/jwt/roles/{name}`` (sudo)."""
    name = _role_name(request)
    await authorize(request, f"auth/jwt/roles/{name}", "sudo")
    role = await _jwt(request).roles.get(name)
    return json_response(JwtRoleRead(name=name, **role.model_dump()))


async def write_role(request: web.Request) -> web.Response:
    """``PUT /v1/auth/jwt/roles/{name}`` (sudo): create or replace."""
    name = _role_name(request)
    await authorize(request, f"auth/jwt/roles/{name}", "sudo")
    doc = await read_json(request)
    if not isinstance(doc, dict):
        raise InvalidRequestError("request body must be a JSON object")
    try:
        role = JwtRole.model_validate(doc).check()
    except ValidationError as exc:
        raise validation_error(exc, "role") from None
    await _jwt(request).roles.put(name, role)
    return no_content()


async def delete_role(request: web.Request) -> web.Response:
    """``DELETE /v1/auth/jwt/roles/{name}`` (sudo)."""
    name = _role_name(request)
    await authorize(request, f"auth/jwt/roles/{name}", "sudo")
    await _jwt(request).roles.delete(name)
    return no_content()


_NAME = (path_param("name"),)
OPERATIONS = (
    Operation("POST", "/v1/auth/jwt/login", "Log in with a signed JWT (a Kubernetes "
              "ServiceAccount token): issuer, audience, expiry, not-before, signature and the "
              "role's bindings are checked; failures are throttled and audited.", None, login,
              body=JwtLogin, response=TokenAuth, errors=(400, 403, 429, 503)),
    Operation("GET", _ROLES, "List JWT roles.", "sudo on auth/jwt/roles", list_roles,
              response=JwtRoleList, errors=(400, 403)),
    Operation("GET", _ROLES + "/{name}", "Read a JWT role.", "sudo on auth/jwt/roles/{name}",
              read_role, response=JwtRoleRead, errors=(400, 403, 404), params=_NAME),
    Operation("PUT", _ROLES + "/{name}", "Create or replace a JWT role: policies, ttl, bound "
              "service account names/namespaces, audiences and claims.",
              "sudo on auth/jwt/roles/{name}", write_role, body=JwtRole, status=204,
              errors=(400, 403), params=_NAME),
    Operation("DELETE", _ROLES + "/{name}", "Delete a JWT role.",
              "sudo on auth/jwt/roles/{name}", delete_role, status=204, errors=(400, 403),
              params=_NAME),
)  # fmt: skip


def add_routes(app: web.Application) -> None:
    """Register the JWT auth routes."""
    add_operations(app, OPERATIONS)
