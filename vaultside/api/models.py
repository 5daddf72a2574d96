"""Request bodies of the HTTP API: strict pydantic models, unknown fields rejected.

``strict=True`` stops silent coercion (``"3"`` is not a version); every model forbids
extra fields so a typo is a 400 naming the field rather than a silently ignored option.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from vaultside.durations import Duration
from vaultside.kv.models import SECRET_TYPES


def _positive(seconds: float) -> float:
    if seconds <= 0:
        raise ValueError("must be positive")
    return seconds


# A positive duration (``3600``, ``"1h30m"``), parsed by the one shared parser.
PositiveDuration = Annotated[Duration, AfterValidator(_positive)]
SecretType = Annotated[str, Field(pattern="^(" + "|".join(SECRET_TYPES) + ")$")]
Version = Annotated[int, Field(ge=1)]


class StrictModel(BaseModel):
    """Base of every request body: no unknown fields, no coercion."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SecretWrite(StrictModel):
    """``PUT/POST /v1/secrets/{path}``."""

    data: dict[str, str]
    cas: Annotated[int, Field(ge=0)] | None = None
    type: SecretType | None = None


class VersionsBody(StrictModel):
    """``:delete`` / ``:undelete`` / ``:destroy``."""

    versions: Annotated[list[Version], Field(min_length=1, max_length=1000)]


class MetadataWrite(StrictModel):
    """``PUT /v1/secrets/{path}:metadata``."""

    max_versions: Annotated[int, Field(ge=0, le=1000)] | None = None
    custom_metadata: Annotated[dict[str, str], Field(max_length=64)] | None = None
    type: SecretType | None = None
    cas_required: bool | None = None


class ResolveBody(StrictModel):
    """``POST /v1/resolve``."""

    refs: Annotated[list[str], Field(min_length=1, max_length=256)]


class TokenCreate(StrictModel):
    """``POST /v1/auth/token/create``."""

    policies: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=128)]], Field(max_length=64)
    ] = []
    ttl: PositiveDuration | None = None
    max_uses: Annotated[int, Field(ge=0)] = 0
    display_name: Annotated[str, Field(max_length=256)] = ""
    renewable: bool = True
    meta: Annotated[dict[str, str], Field(max_length=64)] = {}


class TokenOrAccessor(StrictModel):
    """``lookup`` / ``revoke``: exactly one of ``token`` or ``accessor``."""

    token: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    accessor: Annotated[str, Field(min_length=1, max_length=512)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> TokenOrAccessor:
        if (self.token is None) == (self.accessor is None):
            raise ValueError("give exactly one of 'token' or 'accessor'")
        return self


class RenewSelf(StrictModel):
    """``POST /v1/auth/token/renew-self``."""

    increment: PositiveDuration | None = None


class Renew(StrictModel):
    """``POST /v1/auth/token/renew``."""

    accessor: Annotated[str, Field(min_length=1, max_length=512)]
    increment: PositiveDuration | None = None
