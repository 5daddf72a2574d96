"""Typed results of the client's calls, built from the server's JSON.

Secret metadata is not declared again here: it is ``vaultside.kv.models`` (``VersionMeta``,
``SecretMeta``), read back from the wire shape by ``version_meta`` / ``secret_meta`` (RFC3339
strings become epoch seconds; ``to_json`` gives the wire shape again). Results whose values
are secrets (``SecretData``, ``BrokeredSecret``, ``TokenAuth``) never show them in ``repr``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from vaultside.kv.models import SecretMeta, VersionMeta


def _epoch(text: object) -> float:
    """An RFC3339 time as sent by the server, in epoch seconds (0.0 if absent)."""
    if not text:
        return 0.0
    return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()


def version_meta(obj: Mapping[str, Any]) -> VersionMeta:
    """The contract's ``VersionMeta`` object as a ``kv.models.VersionMeta``."""
    deleted = obj.get("deletion_time")
    return VersionMeta(
        version=int(obj["version"]),
        created_time=_epoch(obj.get("created_time")),
        deletion_time=_epoch(deleted) if deleted else None,
        destroyed=bool(obj.get("destroyed", False)),
    )


def secret_meta(obj: Mapping[str, Any]) -> SecretMeta:
    """The contract's ``SecretMeta`` object as a ``kv.models.SecretMeta``."""
    versions = obj.get("versions", {})
    return SecretMeta(
        path=str(obj.get("path", "")),
        secret_type=str(obj.get("type", "generic")),
        current_version=int(obj.get("current_version", 0)),
        oldest_version=int(obj.get("oldest_version", 0)),
        max_versions=int(obj.get("max_versions", 0)),
        cas_required=bool(obj.get("cas_required", False)),
        created_time=_epoch(obj.get("created_time")),
        updated_time=_epoch(obj.get("updated_time")),
        custom_metadata={str(k): str(v) for k, v in obj.get("custom_metadata", {}).items()},
        versions={int(k): version_meta(v) for k, v in sorted(versions.items(), key=_num)},
    )


def _num(item: tuple[str, object]) -> int:
    return int(item[0])


@dataclass(frozen=True, slots=True)
class NotModified:
    """Marker returned by ``read_secret`` when the server answered 304 for an ``etag``."""

    etag: str


@dataclass(frozen=True, slots=True)
class SecretData:
    """One version of a secret as read over HTTP. ``repr`` never shows the values."""

    path: str
    data: dict[str, str]
    metadata: VersionMeta
    etag: str | None = None

    def __repr__(self) -> str:
        # SECURITY: values stay out of reprs (and so out of logs and tracebacks).
        return (
            f"SecretData(path={self.path!r}, fields={sorted(self.data)}, v={self.metadata.version})"
        )


@dataclass(frozen=True, slots=True)
class BrokeredSecret:
    """A secret read through a broker (``GET /v1/broker/...``); ``repr`` never shows values.

    ``metadata`` holds ``kind``, ``stale`` and (KV v2) ``version``; ``lease`` is set for dynamic
    secrets; ``stale`` is true when the value came from cache while the upstream was down.
    """

    data: dict[str, str] = field(repr=False)
    metadata: dict[str, Any]
    lease: dict[str, Any] | None
    stale: bool

    def to_json(self) -> dict[str, Any]:
        """The body the server sent: ``{"data", "metadata", "lease"}``."""
        return {"data": self.data, "metadata": self.metadata, "lease": self.lease}


@dataclass(frozen=True, slots=True)
class TokenAuth:
    """A freshly created token: the only time the token itself is shown. ``repr`` hides it."""

    token: str = field(repr=False)
    accessor: str
    policies: tuple[str, ...]
    expire_time: str | None
    ttl: float | None
    renewable: bool

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> TokenAuth:
        """Build from the contract's ``TokenAuth`` object."""
        ttl = obj.get("ttl")
        return cls(
            token=str(obj["token"]),
            accessor=str(obj["accessor"]),
            policies=tuple(obj.get("policies", ())),
            expire_time=obj.get("expire_time"),
            ttl=float(ttl) if ttl is not None else None,
            renewable=bool(obj.get("renewable", False)),
        )
