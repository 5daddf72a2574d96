"""The audit event: what happened, to what, by whom — never a secret value.

``AuditEvent.to_record`` turns an event into the JSON record the sinks write. Identity and
routing fields are written as they are. Values that could be sensitive are written only as
``hmac-sha256:<hex>`` under the audit key: every entry of ``sensitive``, and any ``extra``
entry whose key names a credential (token, secret, password, value, key, ...), so a caller
that puts a token under ``extra["token"]`` by mistake still does not leak it. Use
``vaultside audit hash`` to compute the hash of a known value and search the log for it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from vaultside.audit.hmac import AuditHasher
from vaultside.clock import rfc3339

# SECURITY: extra keys that look like they carry credentials are hashed, never written raw.
_SENSITIVE_KEY = re.compile(
    r"token|secret|passw|value|key|credential|auth|cookie|data|private|cert", re.IGNORECASE
)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One request (or operation) as audited; contains identifiers, never secret values."""

    time: float
    request_id: str
    accessor: str | None
    policies: Sequence[str]
    operation: str
    path: str
    status: int
    client: str
    latency_ms: float
    error: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    sensitive: dict[str, str] = field(default_factory=dict)

    def to_record(self, hasher: AuditHasher) -> dict[str, object]:
        """The JSON-ready record, with sensitive values replaced by keyed hashes."""
        extra: dict[str, str] = {}
        for k, v in self.extra.items():
            extra[k] = hasher.hash(v) if _SENSITIVE_KEY.search(k) else v
        for k, v in self.sensitive.items():
            # SECURITY: values marked sensitive appear only as an HMAC.
            extra[k] = hasher.hash(v)
        return {
            "time": rfc3339(self.time),
            "request_id": self.request_id,
            "accessor": self.accessor,
            "policies": list(self.policies),
            "operation": self.operation,
            "path": self.path,
            "status": self.status,
            "client": self.client,
            "latency_ms": round(self.latency_ms, 3),
            "error": self.error,
            "extra": extra,
        }
