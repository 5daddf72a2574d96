"""Keyed hashes for audit records: a value is written as ``hmac-sha256:<hex>``, never raw.

The key lives in a file (64 hex characters, mode 0600), created on first use. Anyone holding
the key can test a guess against a hash (that is the point: an operator can search the log
for a known token), so the key file is as sensitive as the log is not.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import stat
from pathlib import Path

from vaultside.errors import InternalError, NotFoundError

log = logging.getLogger(__name__)

PREFIX = "hmac-sha256:"
_KEY_BYTES = 32


class AuditHasher:
    """HMAC-SHA256 of values under the audit key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise InternalError("audit HMAC key is too short")
        self._key = key

    def hash(self, value: str) -> str:
        """``hmac-sha256:<hex>`` of ``value`` (UTF-8)."""
        return PREFIX + hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return "AuditHasher(key=<hidden>)"


def load_key(path: Path) -> bytes:
    """Read an existing key file; ``NotFoundError`` if absent, ``InternalError`` if malformed."""
    try:
        text = path.read_text(encoding="ascii").strip()
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        raise NotFoundError(f"no audit key file at {path}") from exc
    except (OSError, UnicodeError) as exc:
        raise InternalError(f"cannot read audit key file {path}") from exc
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise InternalError(f"audit key file {path} is not hex") from None
    if len(key) < _KEY_BYTES:
        raise InternalError(f"audit key file {path} holds fewer than {_KEY_BYTES} bytes")
    if stat.S_IMODE(mode) & 0o077:
        log.warning("audit key file is readable by group or others", extra={"path": str(path)})
    return key


def load_or_create_key(path: Path) -> bytes:
    """Read the key file, or create it (random 32 bytes, hex, mode 0600) if it is missing."""
    if path.exists():
        return load_key(path)
    key = secrets.token_bytes(_KEY_BYTES)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        # SECURITY: created 0600 from the start (O_EXCL, no window with wider permissions).
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(key.hex() + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # atomic and refuses to replace a key another process made
        except FileExistsError:
            return load_key(path)
    except OSError as exc:
        raise InternalError(f"cannot create audit key file {path}") from exc
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return key
