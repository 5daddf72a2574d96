"""Policies: path globs → capabilities, and the authorizer that applies them.

A policy is a list of rules ``{"path": GLOB, "capabilities": [...]}``. Policy paths are API
paths without ``/v1/`` (``secrets/app/db``, ``sys/policies/ops``, ``auth/token/create``).

Glob semantics (matched against the whole path, segments separated by ``/``):

- ``*`` matches any characters within one segment: ``secrets/*/db`` matches
  ``secrets/app/db`` but not ``secrets/a/b/db``.
- ``**`` as a whole segment matches zero or more segments: ``secrets/**/db`` matches
  ``secrets/db`` and ``secrets/a/b/db``; ``secrets/**`` matches ``secrets`` and everything
  below it; ``**`` alone matches every path.
- A ``*`` that is the last character of the pattern is a prefix match (Vault style) and may
  cross segments: ``secrets/app/*`` matches ``secrets/app/`` and ``secrets/app/x/y`` but not
  ``secrets/app``; ``secrets/app-*`` matches ``secrets/app-1/x``.
- Everything else matches literally. A pattern has at most 4 wildcards (bounded matching cost
  on attacker-chosen paths).

Decision: deny by default. The capabilities of a token on a path are the union over every
rule of every one of its policies whose glob matches; if any matching rule says ``deny``, the
result is empty (explicit deny wins over any allow). An unknown capability is always denied.
The built-in ``root`` policy allows everything and can be neither written nor deleted; the
built-in ``default`` policy (lookup/renew/revoke of the token itself) can be replaced but not
deleted. Compiled policies are cached per process; a put or delete here invalidates at once,
changes made by another process are seen within ``staleness`` seconds (1 s by default).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from vaultside.auth.records import TokenInfo
from vaultside.clock import Clock, SystemClock
from vaultside.errors import InvalidRequestError, NotFoundError, PermissionDeniedError
from vaultside.storage.base import StorageBackend

CAPABILITIES: tuple[str, ...] = (
    "read",
    "list",
    "create",
    "update",
    "delete",
    "rotate",
    "scan",
    "sudo",
    "deny",
)
GRANTS: frozenset[str] = frozenset(CAPABILITIES) - {"deny"}
ROOT_POLICY = "root"
DEFAULT_POLICY = "default"

_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")
_SEGMENT_RE = re.compile(r"[A-Za-z0-9._*-]{1,128}")
_MAX_RULES = 1000
_MAX_WILDCARDS = 4
_MAX_PATH_LEN = 1024
_PATH_CACHE_SIZE = 4096


def validate_policy_name(name: object) -> str:
    """Return ``name`` if it is a valid policy name, else raise ``InvalidRequestError``."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InvalidRequestError(
            "invalid policy name: use 1-128 of [a-z0-9._-], starting with a letter or digit"
        )
    return name


def compile_glob(pattern: str) -> re.Pattern[str]:
    """Compile a policy path glob (module docstring) to an anchored regex."""
    segs = pattern.split("/")
    if not pattern or len(pattern) > 512:
        raise InvalidRequestError("path must be 1-512 characters")
    if pattern.count("*") - pattern.count("**") > _MAX_WILDCARDS:
        raise InvalidRequestError(f"path has more than {_MAX_WILDCARDS} wildcards")
    out: list[str] = []
    last = len(segs) - 1
    for i, seg in enumerate(segs):
        if not _SEGMENT_RE.fullmatch(seg):
            raise InvalidRequestError("path segments must be non-empty [A-Za-z0-9._-*]")
        prev_globstar = i > 0 and segs[i - 1] == "**"
        if seg == "**":
            if prev_globstar:
                raise InvalidRequestError("path has two consecutive '**' segments")
            if i == 0:
                out.append(".*" if i == last else "(?:.*/)?")
            else:
                out.append("(?:/.*)?" if i == last else "/(?:.*/)?")
            continue
        if "**" in seg:
            raise InvalidRequestError("'**' must be a whole path segment")
        if i > 0 and not prev_globstar:
            out.append("/")
        trailing = i == last and seg.endswith("*")
        body = seg[:-1] if trailing else seg
        if seg == "*" and not trailing:
            out.append("[^/]+")  # a lone "*" stands for one whole, non-empty segment
        else:
            out.append("[^/]*".join(re.escape(part) for part in body.split("*")))
        if trailing:
            out.append(".*")
    return re.compile("".join(out))


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule: a path glob and the capabilities it grants (or ``deny``)."""

    path: str
    capabilities: frozenset[str]


@dataclass(frozen=True, slots=True)
class Policy:
    """A named list of rules."""

    name: str
    rules: tuple[Rule, ...]

    @classmethod
    def from_json(cls, name: str, obj: object) -> Policy:
        """Parse ``{"rules": [...]}``; ``InvalidRequestError`` names the bad field."""
        validate_policy_name(name)
        if not isinstance(obj, Mapping):
            raise InvalidRequestError("policy body must be an object")
        unknown = sorted(set(obj) - {"rules"})
        if unknown:
            raise InvalidRequestError(f"unknown field: {unknown[0]}")
        raw_rules = obj.get("rules")
        if not isinstance(raw_rules, list):
            raise InvalidRequestError("rules: must be a list")
        if len(raw_rules) > _MAX_RULES:
            raise InvalidRequestError(f"rules: at most {_MAX_RULES} rules")
        rules: list[Rule] = []
        for i, raw in enumerate(raw_rules):
            where = f"rules[{i}]"
            if not isinstance(raw, Mapping):
                raise InvalidRequestError(f"{where}: must be an object")
            extra = sorted(set(raw) - {"path", "capabilities"})
            if extra:
                raise InvalidRequestError(f"{where}: unknown field: {extra[0]}")
            path = raw.get("path")
            if not isinstance(path, str):
                raise InvalidRequestError(f"{where}.path: must be a string")
            try:
                compile_glob(path)
            except InvalidRequestError as exc:
                raise InvalidRequestError(f"{where}.path: {exc.message}") from None
            caps = raw.get("capabilities")
            if not isinstance(caps, list) or not caps:
                raise InvalidRequestError(f"{where}.capabilities: must be a non-empty list")
            for j, cap in enumerate(caps):
                if cap not in CAPABILITIES:
                    raise InvalidRequestError(
                        f"{where}.capabilities[{j}]: unknown capability"
                        f" (one of: {', '.join(CAPABILITIES)})"
                    )
            rules.append(Rule(path=path, capabilities=frozenset(caps)))
        return cls(name=name, rules=tuple(rules))

    def to_json(self) -> dict[str, object]:
        """The JSON form accepted by ``from_json`` (plus the name)."""
        return {
            "name": self.name,
            "rules": [
                {"path": r.path, "capabilities": [c for c in CAPABILITIES if c in r.capabilities]}
                for r in self.rules
            ],
        }


BUILTIN_DEFAULT = Policy(
    name=DEFAULT_POLICY,
    rules=(
        Rule("auth/token/lookup-self", frozenset({"read"})),
        Rule("auth/token/renew-self", frozenset({"update"})),
        Rule("auth/token/revoke-self", frozenset({"update"})),
    ),
)
BUILTIN_ROOT = Policy(name=ROOT_POLICY, rules=(Rule("**", GRANTS),))


class CompiledPolicy:
    """A policy with its globs compiled and a small per-path result cache."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._rules = [(compile_glob(r.path), r.capabilities) for r in policy.rules]
        self._cache: dict[str, frozenset[str]] = {}

    def capabilities(self, path: str) -> frozenset[str]:
        """Union of the capabilities of every matching rule (may include ``deny``)."""
        hit = self._cache.get(path)
        if hit is not None:
            return hit
        caps: set[str] = set()
        for regex, rule_caps in self._rules:
            if regex.fullmatch(path):
                caps |= rule_caps
        result = frozenset(caps)
        if len(self._cache) >= _PATH_CACHE_SIZE:
            self._cache.clear()
        self._cache[path] = result
        return result


@dataclass(slots=True)
class _Cached:
    compiled: CompiledPolicy | None
    revision: int
    checked_at: float


class PolicyStore:
    """Policies stored by name in the store's view (``auth/policy/``), with a compiled cache."""

    def __init__(
        self,
        storage: StorageBackend,
        *,
        clock: Clock | None = None,
        staleness: float = 1.0,
    ) -> None:
        self._storage = storage
        self._clock: Clock = clock or SystemClock()
        self._staleness = staleness
        self._cache: dict[str, _Cached] = {}

    async def get(self, name: str) -> Policy:
        """The named policy (built-ins included); ``NotFoundError`` if absent."""
        validate_policy_name(name)
        if name == ROOT_POLICY:
            return BUILTIN_ROOT
        rec = await self._storage.get(name)
        if rec is None:
            if name == DEFAULT_POLICY:
                return BUILTIN_DEFAULT
            raise NotFoundError(f"no policy named {name}")
        return Policy.from_json(name, json.loads(rec.value))

    async def put(self, policy: Policy) -> None:
        """Create or replace a policy; ``root`` cannot be written (``InvalidRequestError``)."""
        validate_policy_name(policy.name)
        if policy.name == ROOT_POLICY:
            raise InvalidRequestError("the root policy cannot be modified")
        body = {"rules": policy.to_json()["rules"]}
        await self._storage.put(policy.name, json.dumps(body).encode())
        self._cache.pop(policy.name, None)

    async def delete(self, name: str) -> bool:
        """Delete a policy; True if it existed. Built-ins cannot be deleted."""
        validate_policy_name(name)
        if name in (ROOT_POLICY, DEFAULT_POLICY):
            raise InvalidRequestError(f"the {name} policy cannot be deleted")
        existed = await self._storage.delete(name)
        self._cache.pop(name, None)
        return existed

    async def list(self) -> list[str]:
        """Every policy name, built-ins included, sorted."""
        names = {ROOT_POLICY, DEFAULT_POLICY}
        names.update(await self._storage.list(""))
        return sorted(names)

    def invalidate(self, name: str | None = None) -> None:
        """Drop one cached policy or, with None, all of them (changed by another server)."""
        if name is None:
            self._cache.clear()
        else:
            self._cache.pop(name, None)

    async def compiled(self, name: str) -> CompiledPolicy | None:
        """The compiled policy, None if it does not exist; stale by at most ``staleness`` s."""
        now = self._clock.monotonic()
        entry = self._cache.get(name)
        if entry is not None and now - entry.checked_at < self._staleness:
            return entry.compiled
        if name == ROOT_POLICY:
            compiled: CompiledPolicy | None = CompiledPolicy(BUILTIN_ROOT)
            revision = 0
        else:
            rec = await self._storage.get(name)
            revision = rec.revision if rec is not None else 0
            if entry is not None and entry.revision == revision:
                compiled = entry.compiled
            elif rec is not None:
                compiled = CompiledPolicy(Policy.from_json(name, json.loads(rec.value)))
            elif name == DEFAULT_POLICY:
                compiled = CompiledPolicy(BUILTIN_DEFAULT)
            else:
                compiled = None
        self._cache[name] = _Cached(compiled, revision, now)
        return compiled


class Authorizer:
    """(token, path, capability) → allow, or ``PermissionDeniedError``. Deny by default."""

    def __init__(self, policies: PolicyStore) -> None:
        self._policies = policies

    async def capabilities(self, token: TokenInfo, path: str) -> set[str]:
        """What ``token`` may do on ``path`` (empty when denied)."""
        # SECURITY: root short-circuits; everything else is deny-by-default union of rules.
        if ROOT_POLICY in token.policies:
            return set(GRANTS)
        if len(path) > _MAX_PATH_LEN:
            return set()
        caps: set[str] = set()
        for name in token.policies:
            compiled = await self._policies.compiled(name)
            if compiled is not None:
                caps |= compiled.capabilities(path)
        # SECURITY: an explicit deny on any matching rule wins over every allow.
        if "deny" in caps:
            return set()
        return caps

    async def check(self, token: TokenInfo, path: str, capability: str) -> None:
        """Raise ``PermissionDeniedError`` unless ``token`` has ``capability`` on ``path``."""
        # SECURITY: unknown capabilities (and "deny" itself) are never granted.
        if capability not in GRANTS:
            raise PermissionDeniedError()
        if capability not in await self.capabilities(token, path):
            raise PermissionDeniedError()
