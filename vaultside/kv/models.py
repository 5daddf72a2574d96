"""The KV store's public models; ``to_json`` gives the shapes in docs/api-contract.md."""

from __future__ import annotations

from dataclasses import dataclass, field

from vaultside.clock import rfc3339

SECRET_TYPES = ("password", "token", "certificate", "private_key", "ssh_key", "generic")


@dataclass(frozen=True, slots=True)
class VersionMeta:
    """One version's lifecycle: when written, soft-deleted, and whether destroyed."""

    version: int
    created_time: float
    deletion_time: float | None
    destroyed: bool

    def to_json(self) -> dict[str, object]:
        """The contract's ``VersionMeta``."""
        return {
            "version": self.version,
            "created_time": rfc3339(self.created_time),
            "deletion_time": None if self.deletion_time is None else rfc3339(self.deletion_time),
            "destroyed": self.destroyed,
        }


@dataclass(frozen=True, slots=True)
class SecretMeta:
    """A secret's metadata; ``max_versions`` 0 means the store default."""

    path: str
    secret_type: str
    current_version: int
    oldest_version: int
    max_versions: int
    cas_required: bool
    created_time: float
    updated_time: float
    custom_metadata: dict[str, str]
    versions: dict[int, VersionMeta]

    def to_json(self) -> dict[str, object]:
        """The contract's ``SecretMeta`` (version keys as strings)."""
        return {
            "path": self.path,
            "type": self.secret_type,
            "current_version": self.current_version,
            "oldest_version": self.oldest_version,
            "max_versions": self.max_versions,
            "cas_required": self.cas_required,
            "created_time": rfc3339(self.created_time),
            "updated_time": rfc3339(self.updated_time),
            "custom_metadata": dict(self.custom_metadata),
            "versions": {str(n): self.versions[n].to_json() for n in sorted(self.versions)},
        }


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
