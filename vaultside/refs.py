"""Secret references: one syntax for every place a secret is named.

Forms::

    kv:<path>#<field>[@<version>]                 a field of a local secret
    vault:<broker>/<mount>/<path>#<field>[@<version>]  a field of a Vault/OpenBao secret

``<path>`` follows the secret path rules (``vaultside.kv.paths``): ``/``-separated segments of
``[A-Za-z0-9._-]``, no ``.``/``..``, no empty segments. ``<field>`` is ``[A-Za-z0-9._-]+``.
``@<version>`` pins a version (a positive integer). For dynamic credentials (database engine
and the like) the field names a key of the lease's data, e.g.
``vault:corp/database/creds/app#password``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from vaultside.errors import InvalidRequestError
from vaultside.numeric import parse_int

EXPECTED_FORMS = (
    "kv:<path>#<field>[@<version>] or vault:<broker>/<mount>/<path>#<field>[@<version>]"
)
_SEGMENT = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_FIELD = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_MAX_REF = 1024
# Versions are bounded so they fit every storage backend's 64-bit integers.
MAX_VERSION = 10**18 - 1


@dataclass(frozen=True, slots=True)
class SecretRef:
    """A parsed reference. ``broker`` and ``mount`` are set only for ``vault`` refs."""

    scheme: Literal["kv", "vault"]
    path: str
    field: str
    version: int | None = None
    broker: str | None = None
    mount: str | None = None

    def __str__(self) -> str:
        version = f"@{self.version}" if self.version is not None else ""
        if self.scheme == "vault":
            return f"vault:{self.broker}/{self.mount}/{self.path}#{self.field}{version}"
        return f"kv:{self.path}#{self.field}{version}"

    @property
    def policy_path(self) -> str:
        """The API path whose ``read`` capability governs this reference."""
        if self.scheme == "vault":
            return f"broker/{self.broker}/{self.mount}/{self.path}"
        return f"secrets/{self.path}"


def _bad(why: str) -> InvalidRequestError:
    # SECURITY: the message names the rule, never the reference itself (it is client input).
    return InvalidRequestError(f"invalid secret reference: {why}; expected {EXPECTED_FORMS}")


def _check_segments(path: str, what: str) -> None:
    if not path:
        raise _bad(f"empty {what}")
    for seg in path.split("/"):
        if seg in ("", ".", ".."):
            raise _bad(f"{what} has an empty, '.' or '..' segment")
        if not _SEGMENT.fullmatch(seg):
            raise _bad(f"{what} segment has characters outside [A-Za-z0-9._-]")


def parse_ref(ref: str) -> SecretRef:
    """Parse a reference; ``InvalidRequestError`` showing the expected form if malformed."""
    if not isinstance(ref, str) or not ref:
        raise _bad("empty reference")
    if len(ref) > _MAX_REF:
        raise _bad(f"longer than {_MAX_REF} characters")
    scheme, sep, rest = ref.partition(":")
    if not sep or scheme not in ("kv", "vault"):
        raise _bad("unknown scheme (use 'kv:' or 'vault:')")
    target, hash_, field_part = rest.partition("#")
    if not hash_:
        raise _bad("missing '#<field>'")
    field, at, version_text = field_part.partition("@")
    if not _FIELD.fullmatch(field):
        raise _bad("field must be [A-Za-z0-9._-]+")
    version: int | None = None
    if at:
        try:
            version = parse_int(version_text, 1, MAX_VERSION)
        except ValueError:
            raise _bad("version must be a positive integer") from None
    if scheme == "kv":
        _check_segments(target, "path")
        return SecretRef("kv", target, field, version)
    parts = target.split("/", 2)
    if len(parts) < 3:
        raise _bad("vault references need <broker>/<mount>/<path>")
    broker, mount, path = parts
    _check_segments(broker, "broker")
    _check_segments(mount, "mount")
    _check_segments(path, "path")
    return SecretRef("vault", path, field, version, broker=broker, mount=mount)


def vault_ref(broker: str, mount: str, path: str, field: str = "_") -> SecretRef:
    """A ``vault`` reference from its parts (e.g. an API path), validated like ``parse_ref``."""
    return parse_ref(f"vault:{broker}/{mount}/{path}#{field}")
