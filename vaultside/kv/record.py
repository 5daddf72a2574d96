"""The stored form of a secret's metadata (one JSON record per path, under the barrier).

Layout in the store's view (``kv/`` of the barrier, from wiring; values encrypted by the
barrier, keys in the clear)::

    meta/<path>               MetaRecord JSON (settings + every retained version)
    data/<path>/<version>     the version's fields as a JSON object

The version number is part of the data key, so the barrier's AAD binds each ciphertext to
its path *and* version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from vaultside.errors import IntegrityError
from vaultside.kv.models import SecretMeta, VersionMeta

META_PREFIX = "meta/"
DATA_PREFIX = "data/"


def meta_key(path: str) -> str:
    """Storage key of a secret's metadata."""
    return META_PREFIX + path


def data_key(path: str, version: int) -> str:
    """Storage key of one version's data."""
    return f"{DATA_PREFIX}{path}/{version}"


@dataclass(slots=True)
class VersionRecord:
    """Mutable state of one version."""

    created_time: float
    deletion_time: float | None = None
    destroyed: bool = False

    @property
    def live(self) -> bool:
        """Readable: neither soft-deleted nor destroyed."""
        return self.deletion_time is None and not self.destroyed


@dataclass(slots=True)
class MetaRecord:
    """Mutable metadata of one secret, as stored."""

    secret_type: str
    created_time: float
    updated_time: float
    current_version: int = 0
    max_versions: int = 0
    cas_required: bool = False
    custom_metadata: dict[str, str] = field(default_factory=dict)
    versions: dict[int, VersionRecord] = field(default_factory=dict)

    @property
    def oldest_version(self) -> int:
        """The lowest retained version number (0 when none)."""
        return min(self.versions, default=0)

    def encode(self) -> bytes:
        """Serialize for storage."""
        doc = {
            "type": self.secret_type,
            "created": self.created_time,
            "updated": self.updated_time,
            "current": self.current_version,
            "max_versions": self.max_versions,
            "cas_required": self.cas_required,
            "custom": self.custom_metadata,
            "versions": {
                str(n): [v.created_time, v.deletion_time, v.destroyed]
                for n, v in sorted(self.versions.items())
            },
        }
        return json.dumps(doc, separators=(",", ":")).encode("utf-8")

    @classmethod
    def decode(cls, raw: bytes) -> MetaRecord:
        """Parse a stored record; ``IntegrityError`` if it is not one."""
        try:
            doc = json.loads(raw)
            return cls(
                secret_type=str(doc["type"]),
                created_time=float(doc["created"]),
                updated_time=float(doc["updated"]),
                current_version=int(doc["current"]),
                max_versions=int(doc["max_versions"]),
                cas_required=bool(doc["cas_required"]),
                custom_metadata={str(k): str(v) for k, v in doc["custom"].items()},
                versions={
                    int(n): VersionRecord(float(c), None if d is None else float(d), bool(x))
                    for n, (c, d, x) in doc["versions"].items()
                },
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise IntegrityError("secret metadata record is malformed") from exc

    def version_meta(self, number: int) -> VersionMeta:
        """The public view of one version."""
        v = self.versions[number]
        return VersionMeta(number, v.created_time, v.deletion_time, v.destroyed)

    def public(self, path: str) -> SecretMeta:
        """The public view of the whole record."""
        return SecretMeta(
            path=path,
            secret_type=self.secret_type,
            current_version=self.current_version,
            oldest_version=self.oldest_version,
            max_versions=self.max_versions,
            cas_required=self.cas_required,
            created_time=self.created_time,
            updated_time=self.updated_time,
            custom_metadata=dict(self.custom_metadata),
            versions={n: self.version_meta(n) for n in sorted(self.versions)},
        )
