"""AEAD format, tamper and move detection, and the keyring's own encryption."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vaultside.crypto import aead
from vaultside.crypto.keyring import Keyring
from vaultside.errors import IntegrityError


@pytest.fixture
def cipher() -> AESGCM:
    return AESGCM(os.urandom(32))


def test_round_trip_and_layout(cipher: AESGCM) -> None:
    blob = aead.encrypt(cipher, 7, "kv/data/app/db/1", b"hunter2")
    assert blob[0] == aead.FORMAT_VERSION
    assert aead.read_term(blob) == 7
    assert len(blob) == aead.HEADER_BYTES + len(b"hunter2") + aead.TAG_BYTES
    assert b"hunter2" not in blob
    assert aead.decrypt(cipher, 7, "kv/data/app/db/1", blob) == b"hunter2"


def test_nonces_differ(cipher: AESGCM) -> None:
    a = aead.encrypt(cipher, 1, "k", b"same")
    b = aead.encrypt(cipher, 1, "k", b"same")
    assert a != b


def test_flipping_any_byte_fails(cipher: AESGCM) -> None:
    blob = aead.encrypt(cipher, 3, "kv/data/a/1", b"secret value")
    for i in range(len(blob)):
        for bit in (0x01, 0x80):
            bad = bytearray(blob)
            bad[i] ^= bit
            with pytest.raises(IntegrityError):
                aead.decrypt(cipher, aead.read_term(bytes(bad)), "kv/data/a/1", bytes(bad))


@pytest.mark.parametrize(
    "moved_to",
    ["kv/data/a/2", "kv/data/b/1", "kv/meta/a", "kv/data/a/1/", "kv/data/a/10", ""],
)
def test_moved_ciphertext_fails(cipher: AESGCM, moved_to: str) -> None:
    blob = aead.encrypt(cipher, 1, "kv/data/a/1", b"v")
    with pytest.raises(IntegrityError):
        aead.decrypt(cipher, 1, moved_to, blob)


def test_other_key_or_term_fails(cipher: AESGCM) -> None:
    blob = aead.encrypt(cipher, 1, "k", b"v")
    with pytest.raises(IntegrityError):
        aead.decrypt(AESGCM(os.urandom(32)), 1, "k", blob)
    relabelled = blob[:1] + (2).to_bytes(4, "big") + blob[5:]
    with pytest.raises(IntegrityError):
        aead.decrypt(cipher, 2, "k", relabelled)
    with pytest.raises(IntegrityError):
        aead.decrypt(cipher, 2, "k", blob)


@pytest.mark.parametrize("blob", [b"", b"\x01", b"\x01" * 32, b"\x02" + b"\x00" * 40])
def test_malformed_blobs(blob: bytes) -> None:
    with pytest.raises(IntegrityError):
        aead.read_term(blob)


def test_keyring_round_trip_and_wrong_root() -> None:
    root = AESGCM(os.urandom(32))
    ring = Keyring()
    ring.add_term(100.0)
    ring.add_term(200.0)
    blob = ring.seal_with(root)
    again = Keyring.unseal_with(root, blob)
    assert again.active_term == 2
    assert [(t.term, t.created_time) for t in again.terms] == [(1, 100.0), (2, 200.0)]
    term, c = ring.active_cipher()
    data = aead.encrypt(c, term, "k", b"x")
    c2 = again.cipher(term)
    assert c2 is not None and aead.decrypt(c2, term, "k", data) == b"x"
    with pytest.raises(IntegrityError):
        Keyring.unseal_with(AESGCM(os.urandom(32)), blob)
    assert "key" not in repr(again).lower().replace("keyring", "")


def test_keyring_wipe_zeroes_key_bytes() -> None:
    ring = Keyring()
    ring.add_term(1.0)
    held = list(ring._keys.values())
    assert any(held[0])
    ring.wipe()
    assert all(not any(k) for k in held)
    assert ring.cipher(1) is None
