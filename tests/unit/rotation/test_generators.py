"""Generators: the constraints hold for every output (checked over many draws)."""

from __future__ import annotations

import base64
import binascii

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from vaultside.rotation.policy import (
    CLASSES,
    BytesSpec,
    KeyPairSpec,
    PasswordSpec,
    TokenSpec,
)
from vaultside.wiring.rotation import build_generator


def test_password_constraints() -> None:
    spec = PasswordSpec(
        kind="password",
        length=12,
        classes=["lower", "upper", "digit", "symbol"],
        exclude="0O1lI|",
    )
    gen = build_generator(spec)
    seen = set()
    for _ in range(300):
        pw = gen.generate()["password"]
        assert len(pw) == 12
        assert not set(pw) & set("0O1lI|")
        for cls in ("lower", "upper", "digit", "symbol"):
            assert set(pw) & set(CLASSES[cls]), (cls, len(pw))
        seen.add(pw)
    assert len(seen) == 300


def test_password_only_allowed_classes_and_custom_field() -> None:
    spec = PasswordSpec(kind="password", field="pw", length=40, classes=["digit"])
    pw = build_generator(spec).generate()["pw"]
    assert pw.isdigit() and len(pw) == 40


def test_password_required_is_subset() -> None:
    spec = PasswordSpec(kind="password", length=8, classes=["lower", "digit"], required=["digit"])
    for _ in range(100):
        pw = build_generator(spec).generate()["password"]
        assert any(c.isdigit() for c in pw)
        assert set(pw) <= set(CLASSES["lower"] + CLASSES["digit"])


@pytest.mark.parametrize("encoding", ["hex", "base64", "base64url"])
def test_bytes(encoding: str) -> None:
    spec = BytesSpec(kind="bytes", length=33, encoding=encoding)  # type: ignore[arg-type]
    value = build_generator(spec).generate()["value"]
    if encoding == "hex":
        raw = binascii.unhexlify(value)
    elif encoding == "base64":
        raw = base64.b64decode(value, validate=True)
    else:
        assert "=" not in value and "+" not in value and "/" not in value
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    assert len(raw) == 33


def test_token_prefix() -> None:
    spec = TokenSpec(kind="token", prefix="vs_live_", length=32)
    tok = build_generator(spec).generate()["token"]
    assert tok.startswith("vs_live_") and len(tok) == 40 and tok[8:].isalnum()


@pytest.mark.parametrize(
    ("algorithm", "key_type", "ssh_prefix"),
    [
        ("ed25519", ed25519.Ed25519PrivateKey, "ssh-ed25519 "),
        ("ecdsa", ec.EllipticCurvePrivateKey, "ecdsa-sha2-nistp256 "),
        ("rsa", rsa.RSAPrivateKey, "ssh-rsa "),
    ],
)
def test_keypair(algorithm: str, key_type: type, ssh_prefix: str) -> None:
    spec = KeyPairSpec(kind="keypair", algorithm=algorithm, bits=2048)  # type: ignore[arg-type]
    out = build_generator(spec).generate()
    key = serialization.load_pem_private_key(out["private_key"].encode(), None)
    assert isinstance(key, key_type)
    pub = serialization.load_pem_public_key(out["public_key"].encode())
    ssh = serialization.load_ssh_public_key(out["public_key_openssh"].encode())
    raw = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    assert pub.public_bytes(der, raw) == key.public_key().public_bytes(der, raw)
    assert ssh.public_bytes(der, raw) == key.public_key().public_bytes(der, raw)
    assert out["public_key_openssh"].startswith(ssh_prefix)
