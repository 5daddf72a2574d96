"""Whose authority a rotation runs with, and what that authority must hold.

A rotation acts on more than ``rotation/<path>``: it writes new versions of the secret, may
hand its value to a program or a URL, may read other secrets (``admin_dsn_ref``) and may write
upstream. ``needs`` lists every (policy path, capability) a policy's rotation touches:

- ``create`` (secret absent) or ``update`` (present) on ``secrets/<path>``: it writes versions
  (a refusal says "create/update", so it does not reveal whether the secret exists);
- ``read`` on ``secrets/<path>`` when the target receives the value (``command``, ``webhook``);
- ``sudo`` on ``rotation/targets/<name>`` to name a declared target that runs code or calls out;
- ``read`` on every referenced secret (``postgres.admin_dsn_ref``: ``secrets/...`` or
  ``broker/...``);
- ``update`` on ``broker/<broker>/<mount>/<path>`` for ``vault-kv`` (it writes upstream).

``check_write`` verifies them against the caller when a policy is set and returns the
``Grant`` stored with the policy: the caller's accessor and a snapshot of its policy names.
``check_run`` verifies them again before every run (scheduled, manual, leak-triggered)
against the *current* state of that token: revoked, expired or narrowed → the run is
refused (``PermissionDeniedError``), and the engine records and audits the refusal.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Protocol

from vaultside.errors import NotFoundError, PermissionDeniedError
from vaultside.refs import parse_ref
from vaultside.rotation.policy import (
    DECLARED_KINDS,
    PostgresTargetSpec,
    RotationPolicy,
    VaultKvTargetSpec,
)

if TYPE_CHECKING:
    from vaultside.auth.records import TokenInfo


class TokenLookup(Protocol):
    """What the authority needs of ``TokenStore``."""

    async def lookup_accessor(self, accessor: str) -> TokenInfo:
        """The live token with this accessor; ``NotFoundError`` if revoked or expired."""
        ...


class CapabilityCheck(Protocol):
    """What the authority needs of ``Authorizer``."""

    async def capabilities(self, token: TokenInfo, path: str) -> set[str]:
        """What ``token`` may do on ``path`` now (deny by default)."""
        ...


@dataclass(frozen=True)
class Grant:
    """The authority a policy was set with: a token's accessor and its policies then."""

    accessor: str
    policies: tuple[str, ...]
    display_name: str
    granted_at: float

    def to_json(self) -> dict[str, object]:
        """JSON-ready fields (an accessor is not a credential)."""
        return {**asdict(self), "policies": list(self.policies)}

    @classmethod
    def from_json(cls, doc: dict[str, object]) -> Grant:
        """Parse ``to_json``'s output."""
        policies = doc.get("policies")
        granted = doc.get("granted_at")
        return cls(
            accessor=str(doc["accessor"]),
            policies=tuple(str(p) for p in policies) if isinstance(policies, list) else (),
            display_name=str(doc.get("display_name", "")),
            granted_at=float(granted) if isinstance(granted, int | float) else 0.0,
        )


@dataclass(frozen=True)
class Need:
    """One capability a rotation needs; ``why`` names the policy field that needs it."""

    path: str
    capability: str
    why: str
    # What a refusal names instead of ``capability`` (if set): "create/update" does not tell a
    # caller without rights on the secret whether it exists.
    shown: str = ""

    def describe(self) -> str:
        """``<capability> on <path> (<why>)`` for a refusal message."""
        return f"{self.shown or self.capability} on {self.path} ({self.why})"


def needs(path: str, policy: RotationPolicy, *, exists: bool) -> list[Need]:
    """Every capability the rotation of ``path`` under ``policy`` exercises."""
    secret = f"secrets/{path}"
    write = "update" if exists else "create"
    # SECURITY: the refusal says "create/update", so it does not reveal whether the secret exists.
    out = [Need(secret, write, "the rotation writes its versions", shown="create/update")]
    target = policy.target
    if target.kind in DECLARED_KINDS:
        name = getattr(target, "name", "")
        out.append(Need(secret, "read", "target: the target receives the secret's value"))
        out.append(Need(f"rotation/targets/{name}", "sudo", f"target.name: a {target.kind} target"))
    if isinstance(target, PostgresTargetSpec):
        out.append(
            Need(parse_ref(target.admin_dsn_ref).policy_path, "read", "target.admin_dsn_ref")
        )
    if isinstance(target, VaultKvTargetSpec):
        upstream = f"broker/{target.broker}/{target.mount}/{target.path}"
        out.append(Need(upstream, "update", "target: vault-kv writes the value upstream"))
    return out


class RotationAuthority:
    """Checks a caller (when a policy is set) and a grant (before each run)."""

    def __init__(self, tokens: TokenLookup, authorizer: CapabilityCheck) -> None:
        self._tokens = tokens
        self._authorizer = authorizer

    async def _missing(self, token: TokenInfo, wanted: list[Need]) -> Need | None:
        for need in wanted:
            if need.capability not in await self._authorizer.capabilities(token, need.path):
                return need
        return None

    async def check_write(
        self, caller: TokenInfo, path: str, policy: RotationPolicy, *, exists: bool, now: float
    ) -> Grant:
        """The grant to store with ``policy``; ``PermissionDeniedError`` naming what is missing."""
        missing = await self._missing(caller, needs(path, policy, exists=exists))
        if missing is not None:
            # SECURITY: the server never acts beyond the rights of whoever asked.
            raise PermissionDeniedError(f"setting this rotation policy needs {missing.describe()}")
        return Grant(caller.accessor, tuple(caller.policies), caller.display_name, now)

    async def check_run(
        self, grant: Grant | None, path: str, policy: RotationPolicy, *, exists: bool
    ) -> None:
        """``PermissionDeniedError`` unless the grant's token still holds every need now."""
        if grant is None:
            raise PermissionDeniedError(
                "this policy has no recorded authority (set before authority was recorded); "
                "set it again"
            )
        try:
            token = await self._tokens.lookup_accessor(grant.accessor)
        except NotFoundError:
            raise PermissionDeniedError(
                "the token that set this policy is revoked or expired; set the policy again"
            ) from None
        missing = await self._missing(token, needs(path, policy, exists=exists))
        if missing is not None:
            raise PermissionDeniedError(
                f"the token that set this policy no longer holds {missing.describe()}; "
                "set the policy again"
            )
