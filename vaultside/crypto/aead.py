"""AES-256-GCM with a self-describing header, bound to its storage key by the AAD.

Ciphertext layout::

    version (1 byte, 0x01) | key term (4 bytes, big endian) | nonce (12 bytes) | ct + tag (16)

The AAD is ``version | term | storage key (UTF-8)``, so a ciphertext copied to another key
(another path or another version number, since the kv layer puts the version in the key) or
relabelled with another term fails authentication and raises ``IntegrityError``.
"""

from __future__ import annotations

import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vaultside.errors import IntegrityError

FORMAT_VERSION = 1
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
_HEADER = struct.Struct(">BI")
HEADER_BYTES = _HEADER.size + NONCE_BYTES


def read_term(blob: bytes) -> int:
    """The key term a ciphertext was made with (no decryption); ``IntegrityError`` if malformed."""
    if len(blob) < HEADER_BYTES + TAG_BYTES:
        raise IntegrityError("ciphertext too short")
    version, term = _HEADER.unpack_from(blob)
    if version != FORMAT_VERSION:
        raise IntegrityError(f"unknown ciphertext format version {version}")
    return int(term)


def _aad(term: int, key: str) -> bytes:
    return _HEADER.pack(FORMAT_VERSION, term) + key.encode("utf-8")


def encrypt(cipher: AESGCM, term: int, key: str, plaintext: bytes) -> bytes:
    """Encrypt ``plaintext`` for storage key ``key`` with the data key of ``term``."""
    # SECURITY: a fresh random 96-bit nonce per record; with at most a few billion writes per
    # key term the collision probability stays far below 2^-32 (NIST SP 800-38D).
    nonce = os.urandom(NONCE_BYTES)
    header = _HEADER.pack(FORMAT_VERSION, term) + nonce
    return header + cipher.encrypt(nonce, plaintext, _aad(term, key))


def decrypt(cipher: AESGCM, term: int, key: str, blob: bytes) -> bytes:
    """Decrypt a ciphertext stored at ``key``; ``IntegrityError`` if it was altered or moved."""
    if read_term(blob) != term:
        raise IntegrityError("ciphertext key term does not match")
    nonce = blob[_HEADER.size : HEADER_BYTES]
    try:
        return cipher.decrypt(nonce, blob[HEADER_BYTES:], _aad(term, key))
    except InvalidTag as exc:
        # SECURITY: never retry and never fall back to another key: the data was tampered
        # with, or moved from another storage key.
        raise IntegrityError(f"ciphertext at {key!r} failed authentication") from exc
