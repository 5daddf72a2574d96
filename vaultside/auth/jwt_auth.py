"""The JWT auth method: a signed JWT (a Kubernetes ServiceAccount token) → a vaultside token.

A role (stored below the barrier at ``auth/jwt/role/<name>``) binds claims to policies and a
TTL. A login is accepted only if every check passes, in this order:

1. the header's ``alg`` is in the configured allow-list (asymmetric only; ``none`` never);
2. the signature verifies with the issuer's key named by ``kid`` (see ``auth.jwks``);
3. ``iss`` is the configured issuer; ``aud`` meets the role's audiences (or the default);
4. ``exp`` is in the future and ``nbf``/``iat`` not in the future, give or take ``clock_skew``
   (checked on the injected clock);
5. the role's bindings: ServiceAccount names and namespaces (from
   ``sub = system:serviceaccount:<ns>:<name>``, which must agree with the ``kubernetes.io``
   claim when present), and ``bound_claims`` (top-level names, or ``/a/b`` pointers).

The issued token is an ordinary token (``TokenStore.create``) whose metadata names the role
and the subject. Every refusal is a ``PermissionDeniedError`` whose message says which check
failed, never a claim value nor the JWT itself (it is a credential: never logged).
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
from typing import Annotated, Any

import jwt
from pydantic import BaseModel, ConfigDict, Field

from vaultside.auth.jwks import JwksKeys
from vaultside.auth.policy import validate_policy_name
from vaultside.auth.tokens import TokenInfo, TokenStore
from vaultside.clock import Clock
from vaultside.durations import Duration
from vaultside.errors import InvalidRequestError, NotFoundError, PermissionDeniedError
from vaultside.storage.base import StorageBackend

_ROLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SA_SUB = re.compile(r"system:serviceaccount:([^:]{1,253}):([^:]{1,253})")  # k8s name limits
_MAX_JWT = 16 * 1024

Pattern = Annotated[str, Field(min_length=1, max_length=253)]
ClaimValues = Annotated[list[Annotated[str, Field(max_length=512)]], Field(min_length=1)]


class JwtRole(BaseModel):
    """What a role binds: who may log in with it, and what the token gets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    policies: Annotated[list[Annotated[str, Field(max_length=128)]], Field(max_length=64)] = []
    ttl: Annotated[Duration, Field(gt=0, le=32 * 86400)] = 3600.0
    # ServiceAccount names / namespaces (glob, ``*`` = any); empty = not bound.
    bound_service_account_names: Annotated[list[Pattern], Field(max_length=64)] = []
    bound_service_account_namespaces: Annotated[list[Pattern], Field(max_length=64)] = []
    # Accepted ``aud`` values; empty = the server's ``auth.jwt.audiences``.
    bound_audiences: Annotated[list[Pattern], Field(max_length=16)] = []
    # Claim (name or ``/a/b`` pointer) → accepted values (exact strings).
    bound_claims: Annotated[dict[str, ClaimValues], Field(max_length=32)] = {}

    def check(self) -> JwtRole:
        """Validate policy names; a role that binds nothing is refused (any SA could use it)."""
        for name in self.policies:
            validate_policy_name(name)
        if not (
            self.bound_service_account_names
            or self.bound_service_account_namespaces
            or self.bound_claims
        ):
            raise InvalidRequestError(
                "a role must bind service account names or namespaces, or bound_claims"
            )
        return self


def validate_role_name(name: str) -> str:
    """``name`` if it is a valid role name, else ``InvalidRequestError``."""
    if not _ROLE_NAME.fullmatch(name):
        raise InvalidRequestError("role names are 1-128 of [A-Za-z0-9._-], not starting with . - _")
    return name


class JwtRoleStore:
    """Roles of the JWT auth method, stored by name in the store's view (below the barrier)."""

    def __init__(self, storage: StorageBackend) -> None:
        self._storage = storage

    async def put(self, name: str, role: JwtRole) -> None:
        """Create or replace a role."""
        await self._storage.put(validate_role_name(name), role.model_dump_json().encode())

    async def get(self, name: str) -> JwtRole:
        """The role; ``NotFoundError`` if there is none."""
        rec = await self._storage.get(validate_role_name(name))
        if rec is None:
            raise NotFoundError(f"no JWT role named {name!r}")
        return JwtRole.model_validate_json(rec.value)

    async def delete(self, name: str) -> None:
        """Delete a role (no-op if absent)."""
        await self._storage.delete(validate_role_name(name))

    async def list(self) -> list[str]:
        """Every role name, sorted."""
        return sorted(await self._storage.list(""))


def _claim(claims: dict[str, Any], name: str) -> object:
    if not name.startswith("/"):
        return claims.get(name)
    node: object = claims
    for part in name[1:].split("/"):
        if not isinstance(node, dict):
            return None
        node = node.get(part.replace("~1", "/").replace("~0", "~"))
    return node


def _matches(value: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(value, p) for p in patterns)


class JwtAuth:
    """Verify a JWT against a role and issue a vaultside token for it."""

    def __init__(
        self,
        *,
        issuer: str,
        keys: JwksKeys,
        roles: JwtRoleStore,
        tokens: TokenStore,
        clock: Clock,
        audiences: list[str],
        algorithms: list[str],
        clock_skew: float,
    ) -> None:
        self.issuer = issuer
        self.roles = roles
        self._keys = keys
        self._tokens = tokens
        self._clock = clock
        self._audiences = list(audiences)
        self._algorithms = list(algorithms)
        self._skew = clock_skew

    async def login(self, role_name: str, token: str) -> tuple[str, TokenInfo]:
        """``(vaultside token, info)`` for a valid JWT; ``PermissionDeniedError`` otherwise."""
        try:
            role = await self.roles.get(role_name)
        except NotFoundError:
            raise PermissionDeniedError("JWT login refused: no such role") from None
        claims = await self.verify(token, role.bound_audiences or self._audiences)
        sub = claims["sub"]
        meta = {"auth": "jwt", "role": role_name, "sub": sub[:512]}
        meta.update(self._bind(role, claims))
        return await self._tokens.create(
            parent=None,
            policies=list(role.policies),
            ttl=role.ttl,
            display_name=f"jwt-{role_name}"[:128],
            meta=meta,
        )

    async def verify(self, token: str, audiences: list[str]) -> dict[str, Any]:
        """The verified claims of ``token`` (signature, iss, aud, exp, nbf, iat)."""
        if not isinstance(token, str) or not token or len(token) > _MAX_JWT:
            raise PermissionDeniedError("JWT login refused: malformed token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise PermissionDeniedError("JWT login refused: malformed token") from None
        alg = header.get("alg")
        # SECURITY: the allow-list is asymmetric-only; "none" and HMAC never get this far.
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise PermissionDeniedError("JWT login refused: signature algorithm not allowed")
        kid = header.get("kid", "")
        key = await self._keys.key(kid if isinstance(kid, str) else "")
        if key.alg is not None and key.alg != alg:
            # The JWK says which algorithm its key is for (RFC 7517 4.4): no other.
            raise PermissionDeniedError("JWT login refused: algorithm does not match the key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                audience=audiences,
                issuer=self.issuer,
                # Times are checked below on the injected clock.
                options={
                    "require": ["iss", "sub", "aud", "exp"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidAudienceError:
            raise PermissionDeniedError("JWT login refused: audience not accepted") from None
        except jwt.InvalidIssuerError:
            raise PermissionDeniedError("JWT login refused: wrong issuer") from None
        except jwt.InvalidSignatureError:
            raise PermissionDeniedError("JWT login refused: bad signature") from None
        except jwt.MissingRequiredClaimError as exc:
            raise PermissionDeniedError(f"JWT login refused: no {exc.claim} claim") from None
        except jwt.PyJWTError:
            raise PermissionDeniedError("JWT login refused: invalid token") from None
        self._check_times(claims)
        if not isinstance(claims.get("sub"), str):
            raise PermissionDeniedError("JWT login refused: sub is not a string")
        return claims

    def _check_times(self, claims: dict[str, Any]) -> None:
        now = self._clock.now()
        for name in ("exp", "nbf", "iat"):
            value = claims.get(name, 0)
            # SECURITY: JSON parsers accept NaN and Infinity; neither may mean "never expires".
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise PermissionDeniedError(f"JWT login refused: {name} is not a number")
            if not math.isfinite(value):
                raise PermissionDeniedError(f"JWT login refused: {name} is not a finite number")
        if now - self._skew >= claims["exp"]:
            raise PermissionDeniedError("JWT login refused: token expired")
        if "nbf" in claims and now + self._skew < claims["nbf"]:
            raise PermissionDeniedError("JWT login refused: token not valid yet (nbf)")
        if "iat" in claims and now + self._skew < claims["iat"]:
            raise PermissionDeniedError("JWT login refused: token issued in the future (iat)")

    @staticmethod
    def _bind(role: JwtRole, claims: dict[str, Any]) -> dict[str, str]:
        """Check the role's bindings; returns the token metadata they yield."""
        meta: dict[str, str] = {}
        sa = _SA_SUB.fullmatch(claims["sub"])
        k8s = claims.get("kubernetes.io")
        if k8s is not None and not isinstance(k8s, dict):
            raise PermissionDeniedError("JWT login refused: malformed kubernetes.io claim")
        if sa is not None:
            namespace, name = sa.group(1), sa.group(2)
            if k8s is not None:
                sa_claim = k8s.get("serviceaccount")
                claimed_name = sa_claim.get("name") if isinstance(sa_claim, dict) else None
                if k8s.get("namespace") != namespace or claimed_name != name:
                    raise PermissionDeniedError(
                        "JWT login refused: sub and kubernetes.io claims disagree"
                    )
                pod = k8s.get("pod")
                if isinstance(pod, dict) and isinstance(pod.get("name"), str):
                    meta["pod"] = pod["name"][:253]
            meta["namespace"], meta["service_account"] = namespace, name
        wants_sa = role.bound_service_account_names or role.bound_service_account_namespaces
        if wants_sa and sa is None:
            raise PermissionDeniedError("JWT login refused: not a ServiceAccount token")
        if role.bound_service_account_namespaces and not _matches(
            meta["namespace"], role.bound_service_account_namespaces
        ):
            raise PermissionDeniedError("JWT login refused: namespace not bound to this role")
        if role.bound_service_account_names and not _matches(
            meta["service_account"], role.bound_service_account_names
        ):
            raise PermissionDeniedError("JWT login refused: service account not bound to this role")
        for name, accepted in role.bound_claims.items():
            value = _claim(claims, name)
            values = value if isinstance(value, list) else [value]
            if not any(isinstance(v, str | int | bool) and _text(v) in accepted for v in values):
                raise PermissionDeniedError(f"JWT login refused: claim {name[:64]} not bound")
        return meta


def _text(value: str | int | bool) -> str:
    return json.dumps(value) if isinstance(value, bool) else str(value)
