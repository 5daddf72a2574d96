"""Validation of what callers hand the KV store: data, types, versions, custom metadata.

Messages name fields and limits, never values (they reach clients and logs).
"""

from __future__ import annotations

import json
import re
from typing import Any

from vaultside.errors import InvalidRequestError, PayloadTooLargeError
from vaultside.kv.models import SECRET_TYPES

FIELD_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")
MAX_CUSTOM_KEYS = 64
MAX_CUSTOM_KEY_BYTES = 128
MAX_CUSTOM_VALUE_BYTES = 512
MAX_VERSIONS_LIMIT = 10_000


def encode_data(data: Any, max_bytes: int) -> bytes:
    """Check a version's fields and serialize them; size = field names + UTF-8 values."""
    if not isinstance(data, dict):
        raise InvalidRequestError("data must be an object mapping field names to strings")
    total = 0
    for name, value in data.items():
        if not isinstance(name, str) or not FIELD_NAME.fullmatch(name):
            raise InvalidRequestError(
                "data: field names must be 1-128 characters of [A-Za-z0-9._-]"
            )
        if not isinstance(value, str):
            raise InvalidRequestError(f"field {name!r} must be a string")
        try:
            total += len(name) + len(value.encode("utf-8"))
        except UnicodeError as exc:
            # SECURITY: the message names the field, never the value.
            raise InvalidRequestError(f"field {name!r} is not valid UTF-8") from exc
    if total > max_bytes:
        raise PayloadTooLargeError(f"secret data is {total} bytes; the limit is {max_bytes}")
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def check_type(secret_type: str) -> str:
    """Return ``secret_type`` if it is one of ``SECRET_TYPES``."""
    if secret_type not in SECRET_TYPES:
        raise InvalidRequestError(f"type must be one of {', '.join(SECRET_TYPES)}")
    return secret_type


def check_versions(versions: list[int] | None) -> list[int] | None:
    """None, or a non-empty list of positive version numbers."""
    if versions is None:
        return None
    if not versions:
        raise InvalidRequestError("versions must name at least one version")
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in versions):
        raise InvalidRequestError("versions must be positive integers")
    return versions


def check_custom_metadata(custom: Any) -> dict[str, str]:
    """At most 64 string pairs; keys 1-128 bytes, values at most 512 bytes."""
    if not isinstance(custom, dict):
        raise InvalidRequestError("custom_metadata must be an object of strings")
    if len(custom) > MAX_CUSTOM_KEYS:
        raise InvalidRequestError(f"custom_metadata has more than {MAX_CUSTOM_KEYS} keys")
    for key, value in custom.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidRequestError("custom_metadata keys and values must be strings")
        try:
            key_bytes, value_bytes = len(key.encode()), len(value.encode())
        except UnicodeError as exc:
            raise InvalidRequestError("custom_metadata is not valid UTF-8") from exc
        if not 0 < key_bytes <= MAX_CUSTOM_KEY_BYTES:
            raise InvalidRequestError(
                f"custom_metadata keys must be 1-{MAX_CUSTOM_KEY_BYTES} bytes"
            )
        if value_bytes > MAX_CUSTOM_VALUE_BYTES:
            raise InvalidRequestError(
                f"custom_metadata value of {key[:64]!r} is longer than"
                f" {MAX_CUSTOM_VALUE_BYTES} bytes"
            )
    return dict(custom)
