"""The keyring: versioned data keys ("terms"), itself encrypted with the root key.

Serialized form (before encryption)::

    magic b"VSKR" | format (1 byte) | active term (u32) | count (u32) |
    count x [term (u32) | created_time (f64) | key (32 bytes)]

Key material is kept in ``bytearray``s so ``wipe`` can overwrite it when the barrier seals;
copies held inside OpenSSL cipher contexts are released with the ``AESGCM`` objects.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vaultside.crypto import aead
from vaultside.errors import IntegrityError

KEYRING_KEY = "core/keyring"
ROOT_TERM = 0
_MAGIC = b"VSKR"
_FORMAT = 1
_HEAD = struct.Struct(">4sBII")
_ENTRY = struct.Struct(">Id")


@dataclass(frozen=True, slots=True)
class TermInfo:
    """Public facts about one data key (no key material)."""

    term: int
    created_time: float


class Keyring:
    """Data keys by term; the active term encrypts new writes, all terms decrypt."""

    def __init__(self) -> None:
        self._keys: dict[int, bytearray] = {}
        self._ciphers: dict[int, AESGCM] = {}
        self._created: dict[int, float] = {}
        self.active_term = 0

    def __repr__(self) -> str:
        return f"Keyring(active_term={self.active_term}, terms={sorted(self._keys)})"

    @property
    def terms(self) -> list[TermInfo]:
        """Every term, oldest first."""
        return [TermInfo(t, self._created[t]) for t in sorted(self._keys)]

    def add_term(self, created_time: float) -> int:
        """Create a new random data key, make it active and return its term."""
        term = max(self._keys, default=0) + 1
        self._install(term, bytearray(os.urandom(aead.KEY_BYTES)), created_time)
        self.active_term = term
        return term

    def _install(self, term: int, key: bytearray, created_time: float) -> None:
        self._keys[term] = key
        self._ciphers[term] = AESGCM(bytes(key))
        self._created[term] = created_time

    def cipher(self, term: int) -> AESGCM | None:
        """The cipher of ``term``, or None if this keyring does not know it."""
        return self._ciphers.get(term)

    def active_cipher(self) -> tuple[int, AESGCM]:
        """The active term and its cipher."""
        return self.active_term, self._ciphers[self.active_term]

    def wipe(self) -> None:
        """Overwrite the key bytes and drop every cipher."""
        for key in self._keys.values():
            key[:] = bytes(len(key))
        self._keys.clear()
        self._ciphers.clear()
        self._created.clear()
        self.active_term = 0

    def seal_with(self, root: AESGCM) -> bytes:
        """Serialize and encrypt the keyring with the root key cipher."""
        buf = bytearray(_HEAD.pack(_MAGIC, _FORMAT, self.active_term, len(self._keys)))
        try:
            for term in sorted(self._keys):
                buf += _ENTRY.pack(term, self._created[term])
                buf += self._keys[term]
            return aead.encrypt(root, ROOT_TERM, KEYRING_KEY, bytes(buf))
        finally:
            # SECURITY: do not leave a plaintext copy of the data keys behind.
            buf[:] = bytes(len(buf))

    @classmethod
    def unseal_with(cls, root: AESGCM, blob: bytes) -> Keyring:
        """Decrypt a keyring; ``IntegrityError`` if the root key is wrong or data altered."""
        plain = bytearray(aead.decrypt(root, ROOT_TERM, KEYRING_KEY, blob))
        try:
            magic, fmt, active, count = _HEAD.unpack_from(plain)
            if magic != _MAGIC or fmt != _FORMAT:
                raise IntegrityError("keyring has an unknown format")
            ring = cls()
            offset = _HEAD.size
            for _ in range(count):
                term, created = _ENTRY.unpack_from(plain, offset)
                offset += _ENTRY.size
                key = bytearray(plain[offset : offset + aead.KEY_BYTES])
                offset += aead.KEY_BYTES
                ring._install(term, key, created)
            if active not in ring._keys:
                raise IntegrityError("keyring has no active key")
            ring.active_term = active
            return ring
        except struct.error as exc:
            raise IntegrityError("keyring is truncated") from exc
        finally:
            plain[:] = bytes(len(plain))
