"""Mint JWTs in exactly the shape Kubernetes issues for a projected ServiceAccount token.

Keys are generated at test time (never committed). A Kubernetes token looks like::

    header  {"alg": "RS256", "kid": "<key id>"}
    payload {"aud": ["vaultside"], "exp": ..., "iat": ..., "nbf": ...,
             "iss": "https://kubernetes.default.svc.cluster.local",
             "sub": "system:serviceaccount:<ns>:<name>",
             "kubernetes.io": {"namespace": ns, "pod": {"name", "uid"},
                               "serviceaccount": {"name", "uid"}}}
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ISSUER = "https://kubernetes.default.svc.cluster.local"


@dataclass
class SigningKey:
    """A private key with its key id and algorithm."""

    kid: str
    alg: str
    private: Any

    def jwk(self) -> dict[str, Any]:
        """The public JWK (as the API server's ``/openid/v1/jwks`` lists it)."""
        pub = self.private.public_key()
        algo = RSAAlgorithm if self.alg.startswith("RS") else ECAlgorithm
        doc: dict[str, Any] = json.loads(algo.to_jwk(pub))
        doc.update({"kid": self.kid, "use": "sig", "alg": self.alg})
        return doc


def rsa_key() -> SigningKey:
    """A fresh RSA-2048 key with a random kid."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return SigningKey(secrets.token_hex(8), "RS256", private)


def ec_key() -> SigningKey:
    """A fresh P-256 key with a random kid."""
    return SigningKey(secrets.token_hex(8), "ES256", ec.generate_private_key(ec.SECP256R1()))


def jwks(*keys: SigningKey) -> dict[str, Any]:
    """A JWKS document of the keys' public halves."""
    return {"keys": [k.jwk() for k in keys]}


@dataclass
class Minter:
    """Mints ServiceAccount tokens; override any claim per call."""

    key: SigningKey
    issuer: str = ISSUER
    audiences: list[str] = field(default_factory=lambda: ["vaultside"])
    now: float | None = None  # None = the real clock

    def claims(
        self, namespace: str = "apps", name: str = "web", *, ttl: int = 3600
    ) -> dict[str, Any]:
        """The payload Kubernetes would put in a projected token."""
        now = int(self.now if self.now is not None else time.time())
        return {
            "aud": list(self.audiences),
            "exp": now + ttl,
            "iat": now,
            "nbf": now,
            "iss": self.issuer,
            "sub": f"system:serviceaccount:{namespace}:{name}",
            "kubernetes.io": {
                "namespace": namespace,
                "pod": {"name": f"{name}-7d4b9c", "uid": str(uuid.uuid4())},
                "serviceaccount": {"name": name, "uid": str(uuid.uuid4())},
            },
        }

    def mint(self, namespace: str = "apps", name: str = "web", **overrides: Any) -> str:
        """A signed token; ``overrides`` replace claims (``None`` removes one)."""
        payload = self.claims(namespace, name)
        for key, value in overrides.items():
            if value is None:
                payload.pop(key, None)
            else:
                payload[key] = value
        return sign(self.key, payload)


def sign(key: SigningKey, payload: dict[str, Any], kid: str | None = None) -> str:
    """``payload`` signed by ``key`` (header kid = ``kid`` or the key's)."""
    return jwt.encode(payload, key.private, algorithm=key.alg, headers={"kid": kid or key.kid})


def _part(obj: dict[str, Any]) -> str:
    raw = json.dumps(obj, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unsigned(payload: dict[str, Any], kid: str = "") -> str:
    """An ``alg: none`` token (what an attacker would send)."""
    header = {"alg": "none", "typ": "JWT", **({"kid": kid} if kid else {})}
    return f"{_part(header)}.{_part(payload)}."


def hmac_with_public_key(key: SigningKey, payload: dict[str, Any]) -> str:
    """HS256 "signed" with the public key's PEM (the classic key-confusion attack)."""
    pem = key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = f"{_part({'alg': 'HS256', 'typ': 'JWT', 'kid': key.kid})}.{_part(payload)}"
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
