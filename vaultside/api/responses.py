"""Response bodies shared by several route groups: one pydantic model each.

A handler renders a model with ``json_response(model)``; the OpenAPI document describes the
same model (a ``#/components/schemas/<Name>`` entry), so the JSON sent and its schema are one
declaration. Models used by one route group only live in that group's module.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from vaultside.auth.records import TokenInfo

_CODE = (
    "the error class's code (vaultside.errors): invalid_request, permission_denied, "
    "not_found, conflict, payload_too_large, too_many_requests, sealed, unavailable, "
    "upstream_error, internal, ..."
)


class Response(BaseModel):
    """Base of every response model: what the server sends, nothing else."""

    model_config = ConfigDict(frozen=True)


def _no_default(schema: dict[str, Any]) -> None:
    schema["properties"]["code"].pop("default", None)


class ErrorBody(Response):
    """Every 4xx/5xx answer: ``{"errors": [...], "code": "...", "request_id": "..."}``.

    One middleware writes it (``vaultside.api.middleware``); messages never hold secret
    values. ``code`` is the error class's code (``vaultside.errors``); clients map by it.
    """

    model_config = ConfigDict(title="Error", json_schema_extra=_no_default)

    errors: list[str]
    code: Annotated[str, WithJsonSchema({"type": "string", "description": _CODE})]
    request_id: str


# An RFC3339 string as the token records write it (``TokenInfo.to_json``), or null.
TokenTime = Annotated[
    str | None, WithJsonSchema({"type": ["string", "null"], "format": "date-time"})
]


class KeyList(Response):
    """A list of names under a prefix (directories end with ``/``)."""

    keys: list[str]


class AuthInfo(Response):
    """A token's grant; ``token`` itself only in the answer that created it."""

    # SECURITY: the only field that ever carries a token value; left out when None.
    token: Annotated[
        str | None,
        Field(exclude_if=lambda v: v is None),
        WithJsonSchema({"type": "string", "description": "only in the create/login response"}),
    ]
    accessor: str
    policies: list[str]
    expire_time: TokenTime
    ttl: int | float | None
    renewable: bool


class TokenAuth(Response):
    """``{"auth": ...}``: create, login and renew answers."""

    auth: AuthInfo


def token_auth(token: str | None, info: TokenInfo) -> TokenAuth:
    """The answer for a created (``token`` given), logged-in or renewed token."""
    expire_time = info.to_json()["expire_time"]  # the token records' RFC3339 form
    return TokenAuth(
        auth=AuthInfo(
            token=token,
            accessor=info.accessor,
            policies=list(info.policies),
            expire_time=expire_time if isinstance(expire_time, str) else None,
            ttl=info.ttl,
            renewable=info.renewable,
        )
    )
