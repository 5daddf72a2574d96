"""Generators: make a new secret value from a policy's generator spec, using the OS CSPRNG.

Every generator returns the fields it produces (``{field: value}``); the rotation merges
them over the secret's current data so other fields (e.g. ``username``) are kept. Which class
serves which ``kind`` is chosen in ``vaultside.wiring.rotation.GENERATOR_KINDS``.
"""

from __future__ import annotations

import base64
import secrets
import string
from typing import Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from vaultside.rotation.policy import (
    CLASSES,
    BytesSpec,
    GeneratorSpec,
    KeyPairSpec,
    PasswordSpec,
    TokenSpec,
)

_BASE62 = string.ascii_letters + string.digits
_CURVES: dict[str, ec.EllipticCurve] = {
    "p256": ec.SECP256R1(),
    "p384": ec.SECP384R1(),
    "p521": ec.SECP521R1(),
}


class Generator(Protocol):
    """Makes a new secret value (one or more fields)."""

    def generate(self) -> dict[str, str]:
        """Fresh random fields."""
        ...


class PasswordGenerator:
    """Passwords drawn uniformly from the allowed classes, one of each required class."""

    def __init__(self, spec: PasswordSpec) -> None:
        self.spec = spec
        excluded = set(spec.exclude)
        self._pools = {c: "".join(ch for ch in CLASSES[c] if ch not in excluded) for c in CLASSES}
        self._alphabet = "".join(dict.fromkeys("".join(self._pools[c] for c in spec.classes)))
        self._required = sorted(set(spec.required if spec.required is not None else spec.classes))

    def generate(self) -> dict[str, str]:
        """A password meeting every constraint of the spec."""
        chars = [secrets.choice(self._pools[c]) for c in self._required]
        chars += [secrets.choice(self._alphabet) for _ in range(self.spec.length - len(chars))]
        # Fisher-Yates with the CSPRNG so required characters are not at fixed positions.
        for i in range(len(chars) - 1, 0, -1):
            j = secrets.randbelow(i + 1)
            chars[i], chars[j] = chars[j], chars[i]
        return {self.spec.field: "".join(chars)}


class BytesGenerator:
    """Random bytes encoded as hex, base64 or base64url (no padding for base64url)."""

    def __init__(self, spec: BytesSpec) -> None:
        self.spec = spec

    def generate(self) -> dict[str, str]:
        """``length`` random bytes, encoded."""
        raw = secrets.token_bytes(self.spec.length)
        if self.spec.encoding == "hex":
            text = raw.hex()
        elif self.spec.encoding == "base64":
            text = base64.b64encode(raw).decode()
        else:
            text = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        return {self.spec.field: text}


class TokenGenerator:
    """``<prefix><base62 random>``, like ``ghp_...`` tokens."""

    def __init__(self, spec: TokenSpec) -> None:
        self.spec = spec

    def generate(self) -> dict[str, str]:
        """A new token."""
        body = "".join(secrets.choice(_BASE62) for _ in range(self.spec.length))
        return {self.spec.field: self.spec.prefix + body}


class KeyPairGenerator:
    """RSA, ECDSA or Ed25519: PKCS#8 private PEM, SubjectPublicKeyInfo PEM and OpenSSH."""

    def __init__(self, spec: KeyPairSpec) -> None:
        self.spec = spec

    def _private(
        self,
    ) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey:
        if self.spec.algorithm == "rsa":
            return rsa.generate_private_key(public_exponent=65537, key_size=self.spec.bits)
        if self.spec.algorithm == "ecdsa":
            return ec.generate_private_key(_CURVES[self.spec.curve])
        return ed25519.Ed25519PrivateKey.generate()

    def generate(self) -> dict[str, str]:
        """A fresh key pair in three encodings."""
        key = self._private()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        public = key.public_key()
        pub_pem = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        ssh = public.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        p = self.spec.field_prefix
        return {
            f"{p}private_key": pem.decode(),
            f"{p}public_key": pub_pem.decode(),
            f"{p}public_key_openssh": ssh.decode(),
        }


def value_field(spec: GeneratorSpec) -> str:
    """The field that holds the main secret value (the password/token/private key)."""
    if isinstance(spec, KeyPairSpec):
        return f"{spec.field_prefix}private_key"
    return spec.field
