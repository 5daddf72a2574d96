"""The KV store's public models: the ONE definition of secret metadata.

``VersionMeta`` and ``SecretMeta`` are pydantic dataclasses: the store builds them (times are
epoch seconds inside), ``to_json`` gives the wire shapes in docs/api-contract.md (times as
RFC3339 strings, version keys as strings), ``json_schema`` the OpenAPI components the API
documents, and a client validates the server's JSON back into them (RFC3339 strings are read
back into epoch seconds). One declaration, so the three can never drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    TypeAdapter,
    WithJsonSchema,
)
from pydantic.dataclasses import dataclass as model

from vaultside.clock import rfc3339

SECRET_TYPES = ("password", "token", "certificate", "private_key", "ssh_key", "generic")


def _epoch(value: Any) -> Any:
    """An RFC3339 string (as sent on the wire) back to epoch seconds; others pass through."""
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return value


# Epoch seconds in Python, an RFC3339 string in JSON and in the schema.
Timestamp = Annotated[
    float,
    BeforeValidator(_epoch),
    PlainSerializer(rfc3339, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


def _by_number(versions: dict[int, VersionMeta]) -> dict[int, VersionMeta]:
    return dict(sorted(versions.items()))


@model(frozen=True, slots=True)
class VersionMeta:
    """One version's lifecycle: when written, soft-deleted, and whether destroyed."""

    version: int
    created_time: Timestamp
    deletion_time: Timestamp | None
    destroyed: bool

    def to_json(self) -> dict[str, object]:
        """The contract's ``VersionMeta``."""
        return _dump(_VERSION_META, self)

    @classmethod
    def from_json(cls, obj: object) -> VersionMeta:
        """Read the contract's ``VersionMeta`` back (``ValidationError`` if malformed)."""
        return _VERSION_META.validate_python(obj)


@model(frozen=True, slots=True, config=ConfigDict(populate_by_name=True))
class SecretMeta:
    """A secret's metadata; ``max_versions`` 0 means the store default."""

    path: str
    secret_type: Annotated[str, Field(alias="type")]
    current_version: int
    oldest_version: int
    max_versions: int
    cas_required: bool
    created_time: Timestamp
    updated_time: Timestamp
    custom_metadata: dict[str, str]
    # Oldest first, whatever order they were given in (JSON keys are the numbers as strings).
    versions: Annotated[dict[int, VersionMeta], AfterValidator(_by_number)]

    def to_json(self) -> dict[str, object]:
        """The contract's ``SecretMeta`` (version keys as strings)."""
        return _dump(_SECRET_META, self)

    @classmethod
    def from_json(cls, obj: object) -> SecretMeta:
        """Read the contract's ``SecretMeta`` back, e.g. in a client (``ValidationError`` if
        malformed): ``SecretMeta.from_json(meta.to_json()) == meta``."""
        return _SECRET_META.validate_python(obj)


_VERSION_META = TypeAdapter(VersionMeta)
_SECRET_META = TypeAdapter(SecretMeta)


def _dump(adapter: TypeAdapter[Any], value: object) -> dict[str, object]:
    out: dict[str, object] = adapter.dump_python(value, mode="json", by_alias=True)
    return out


@dataclass(frozen=True, slots=True)
class SecretVersion:
    """One version's data; the repr shows field names only, never values."""

    path: str
    # SECURITY: repr=False keeps secret values out of reprs, logs and tracebacks.
    data: dict[str, str] = field(repr=False)
    meta: VersionMeta
    secret_type: str

    def __repr__(self) -> str:
        return (
            f"SecretVersion(path={self.path!r}, fields={sorted(self.data)},"
            f" version={self.meta.version}, secret_type={self.secret_type!r})"
        )

    def to_json(self) -> dict[str, object]:
        """``{"data": {...}, "metadata": VersionMeta}`` as the read endpoint returns it."""
        return {"data": dict(self.data), "metadata": self.meta.to_json()}
