"""Token records: the public ``TokenInfo`` and the JSON form stored under its hash."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from vaultside.clock import rfc3339


def hash_token(token: str) -> str:
    """The stored form of a token: SHA-256 hex (the token has ~256 bits of entropy)."""
    # SECURITY: tokens are persisted only as this hash; the token itself is shown once.
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What a token may do and for how long; never contains the token itself."""

    accessor: str
    policies: tuple[str, ...]
    display_name: str
    creation_time: float
    expire_time: float | None
    num_uses_left: int | None
    parent_accessor: str | None
    renewable: bool
    ttl: float | None
    meta: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        """The API's ``TokenInfo`` shape (RFC3339 times; ``ttl`` is the renewal period)."""
        return {
            "accessor": self.accessor,
            "policies": list(self.policies),
            "display_name": self.display_name,
            "creation_time": rfc3339(self.creation_time),
            "expire_time": None if self.expire_time is None else rfc3339(self.expire_time),
            "num_uses_left": self.num_uses_left,
            "parent_accessor": self.parent_accessor,
            "renewable": self.renewable,
            "ttl": self.ttl,
            "meta": dict(self.meta),
        }


@dataclass(frozen=True, slots=True)
class StoredToken:
    """The record kept at ``auth/token/<hash>``: info plus hash, max expiry, revision."""

    info: TokenInfo
    token_hash: str
    max_expire_time: float | None
    revision: int

    def encode(self) -> bytes:
        """JSON bytes for storage (no token, only its hash)."""
        i = self.info
        return json.dumps(
            {
                "token_hash": self.token_hash,
                "accessor": i.accessor,
                "policies": list(i.policies),
                "display_name": i.display_name,
                "creation_time": i.creation_time,
                "expire_time": i.expire_time,
                "max_expire_time": self.max_expire_time,
                "num_uses_left": i.num_uses_left,
                "parent_accessor": i.parent_accessor,
                "renewable": i.renewable,
                "ttl": i.ttl,
                "meta": i.meta,
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def decode(cls, raw: bytes, revision: int) -> StoredToken:
        """Parse a stored record read at ``revision``."""
        d = json.loads(raw)
        info = TokenInfo(
            accessor=d["accessor"],
            policies=tuple(d["policies"]),
            display_name=d["display_name"],
            creation_time=d["creation_time"],
            expire_time=d["expire_time"],
            num_uses_left=d["num_uses_left"],
            parent_accessor=d["parent_accessor"],
            renewable=d["renewable"],
            ttl=d["ttl"],
            meta=dict(d["meta"]),
        )
        return cls(info, d["token_hash"], d["max_expire_time"], revision)
