"""Tokens: random bearer secrets stored only as SHA-256 hashes, with accessors and children.

Storage layout, in the view wiring gives the store (``auth/`` of the barrier; ``policy/`` and
``jwt/`` below it belong to other owners):

- ``token/<sha256 hex>`` → JSON record (accessor, policies, times, uses, parent ...)
- ``accessor/<accessor>`` → the token hash (for lookup/renew/revoke by accessor)
- ``children/<parent accessor>/<child accessor>`` → empty (child index for cascades)

A token is ``vs.`` + 43 base62 characters (~256 bits), so a plain SHA-256 is a safe stored
form. Every non-root token gets the ``default`` policy. A token without a TTL only exists when
``root`` is among its policies; others get ``default_ttl`` and never live past ``max_ttl``
from creation, nor past their parent's expiry at creation or renewal time.

Concurrency: creating a child re-writes its parent's record with a revision check, and
revoking deletes with a revision check, so a child created while its parent is revoked is
either seen by the revocation or fails. Uses of a ``max_uses`` token are decremented with
compare-and-set on every request (never cached). Other tokens are cached in process by hash;
local revoke/renew invalidates at once, and a cached entry is re-read from storage after
``staleness`` seconds (1 s), which bounds how long a revocation by another process takes.
"""

from __future__ import annotations

import contextlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass, replace

from vaultside.auth.policy import DEFAULT_POLICY, ROOT_POLICY, validate_policy_name
from vaultside.auth.records import StoredToken, TokenInfo, hash_token
from vaultside.clock import Clock
from vaultside.errors import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    VaultsideError,
)
from vaultside.storage.base import Delete, Put, StorageBackend

__all__ = ["TokenInfo", "TokenStore", "hash_token"]

_ALPHABET = string.ascii_letters + string.digits
_TOKEN_PREFIX = "vs."
_TOKEN_CHARS = 43
_ACCESSOR_CHARS = 24
_TOKEN_RE = re.compile(rf"vs\.[A-Za-z0-9]{{{_TOKEN_CHARS}}}")
_ACCESSOR_RE = re.compile(rf"[A-Za-z0-9]{{{_ACCESSOR_CHARS}}}")
_TOKEN_KEY = "token/"
_ACCESSOR_KEY = "accessor/"
_CHILDREN_KEY = "children/"
_CAS_RETRIES = 50
_MAX_META = 64


def _random(n: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


@dataclass(slots=True)
class _CacheEntry:
    info: TokenInfo
    token_hash: str
    checked_at: float


class TokenStore:
    """Create, authenticate, look up, renew and revoke tokens.

    Callers handle ``PermissionDeniedError`` (bad token / not allowed), ``InvalidRequestError``
    (bad arguments), ``NotFoundError`` (unknown accessor) and the storage errors.
    """

    def __init__(
        self,
        storage: StorageBackend,
        *,
        clock: Clock,
        default_ttl: float = 32 * 86400,
        max_ttl: float = 32 * 86400,
        staleness: float = 1.0,
        cache_size: int = 100_000,
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._default_ttl = default_ttl
        self._max_ttl = max_ttl
        self._staleness = staleness
        self._cache_size = cache_size
        self._cache: dict[str, _CacheEntry] = {}

    # -- creation ---------------------------------------------------------------------------

    async def create_root(self, display_name: str = "root") -> tuple[str, TokenInfo]:
        """A token with the ``root`` policy, no TTL and no parent."""
        return await self.create(
            parent=None, policies=[ROOT_POLICY], ttl=None, display_name=display_name
        )

    async def create(
        self,
        *,
        parent: TokenInfo | None,
        policies: list[str],
        ttl: float | None,
        max_uses: int = 0,
        display_name: str = "",
        renewable: bool = True,
        meta: dict[str, str] | None = None,
    ) -> tuple[str, TokenInfo]:
        """Make a token; returns ``(token, info)``. The token is never retrievable again.

        A child's policies must be a subset of its parent's unless the parent has ``root``
        (``PermissionDeniedError``). ``parent=None`` is for trusted callers (bootstrap, CLI).
        """
        pols = self._check_policies(policies)
        meta = self._check_meta(meta or {})
        if not isinstance(max_uses, int) or max_uses < 0:
            raise InvalidRequestError("max_uses must be an integer >= 0")
        if ttl is not None and not ttl > 0:
            raise InvalidRequestError("ttl must be positive")
        if len(display_name) > 128 or not display_name.isprintable():
            raise InvalidRequestError("display_name must be at most 128 printable characters")
        if parent is not None and ROOT_POLICY not in parent.policies:
            # SECURITY: a child can never hold a policy its parent does not hold.
            extra = set(pols) - set(parent.policies) - {DEFAULT_POLICY}
            if extra:
                raise PermissionDeniedError("child token policies must be a subset of the parent's")
        if parent is not None and parent.num_uses_left is not None:
            raise PermissionDeniedError("a token with limited uses cannot create child tokens")
        for _ in range(_CAS_RETRIES):
            parent_rec = await self._parent_record(parent)
            now = self._clock.now()
            if ttl is None and ROOT_POLICY in pols:
                expire, max_expire, period = None, None, None
            else:
                period = min(ttl if ttl is not None else self._default_ttl, self._max_ttl)
                expire, max_expire = now + period, now + self._max_ttl
            if parent_rec is not None and parent_rec.info.expire_time is not None:
                cap = parent_rec.info.expire_time
                expire = cap if expire is None else min(expire, cap)
                max_expire = cap if max_expire is None else min(max_expire, cap)
            token = _TOKEN_PREFIX + _random(_TOKEN_CHARS)
            token_hash = hash_token(token)
            info = TokenInfo(
                accessor=_random(_ACCESSOR_CHARS),
                policies=pols,
                display_name=display_name,
                creation_time=now,
                expire_time=expire,
                num_uses_left=max_uses or None,
                parent_accessor=parent.accessor if parent is not None else None,
                renewable=renewable and expire is not None,
                ttl=period,
                meta=meta,
            )
            stored = StoredToken(info, token_hash, max_expire, 0)
            # SECURITY: only the hash of the token is ever written.
            ops: list[Put | Delete] = [
                Put(_TOKEN_KEY + token_hash, stored.encode(), expect_revision=0),
                Put(_ACCESSOR_KEY + info.accessor, token_hash.encode(), expect_revision=0),
            ]
            if parent_rec is not None:
                # Re-write the parent unchanged under a revision check: fails if it was
                # revoked or changed meanwhile, so a revocation cannot miss this child.
                ops.append(
                    Put(
                        _TOKEN_KEY + parent_rec.token_hash,
                        parent_rec.encode(),
                        expect_revision=parent_rec.revision,
                    )
                )
                ops.append(Put(f"{_CHILDREN_KEY}{parent_rec.info.accessor}/{info.accessor}", b""))
            try:
                await self._storage.write_batch(ops)
            except ConflictError:
                continue
            return token, info
        raise ConflictError("token creation kept conflicting; try again")

    async def _parent_record(self, parent: TokenInfo | None) -> StoredToken | None:
        if parent is None:
            return None
        rec = await self._load_accessor(parent.accessor)
        if rec is None or self._expired(rec.info):
            raise PermissionDeniedError("parent token is no longer valid")
        return rec

    @staticmethod
    def _check_policies(policies: list[str]) -> tuple[str, ...]:
        if not isinstance(policies, list | tuple):
            raise InvalidRequestError("policies must be a list of names")
        names = {validate_policy_name(p) for p in policies}
        if ROOT_POLICY not in names:
            names.add(DEFAULT_POLICY)
        return tuple(sorted(names))

    @staticmethod
    def _check_meta(meta: dict[str, str]) -> dict[str, str]:
        if not isinstance(meta, dict) or len(meta) > _MAX_META:
            raise InvalidRequestError(f"meta must be an object of at most {_MAX_META} strings")
        for k, v in meta.items():
            if not isinstance(k, str) or not isinstance(v, str) or len(k) > 128 or len(v) > 512:
                raise InvalidRequestError("meta keys and values must be strings (128/512 chars)")
        return dict(meta)

    # -- reading ----------------------------------------------------------------------------

    async def authenticate(self, token: str) -> TokenInfo:
        """Validate ``token`` and consume one use; ``PermissionDeniedError`` if not valid."""
        token_hash = self._hash_checked(token)
        entry = self._cache.get(token_hash)
        if entry is not None:
            # SECURITY: constant-time comparison of the stored and presented hash.
            fresh = self._clock.monotonic() - entry.checked_at < self._staleness
            if (
                fresh
                and hmac.compare_digest(entry.token_hash, token_hash)
                and not self._expired(entry.info)
            ):
                return entry.info
            self._cache.pop(token_hash, None)
        for _ in range(_CAS_RETRIES):
            rec = await self._load_valid(token_hash)
            uses = rec.info.num_uses_left
            if uses is None:
                self._remember(rec)
                return rec.info
            # SECURITY: limited-use tokens are decremented durably, never served from cache.
            used = replace(rec, info=replace(rec.info, num_uses_left=uses - 1))
            try:
                await self._storage.put(
                    _TOKEN_KEY + token_hash, used.encode(), expect_revision=rec.revision
                )
            except ConflictError:
                continue
            if uses - 1 == 0:
                await self.revoke_accessor(rec.info.accessor)
            return used.info
        raise ConflictError("token use kept conflicting; try again")

    async def lookup(self, token: str) -> TokenInfo:
        """The token's info without consuming a use; ``PermissionDeniedError`` if not valid."""
        return (await self._load_valid(self._hash_checked(token))).info

    async def lookup_accessor(self, accessor: str) -> TokenInfo:
        """The info of the live token with this accessor; ``NotFoundError`` otherwise."""
        rec = await self._load_accessor(self._accessor_checked(accessor))
        if rec is None or self._expired(rec.info):
            raise NotFoundError("no token with this accessor")
        return rec.info

    def _hash_checked(self, token: str) -> str:
        if not isinstance(token, str) or not _TOKEN_RE.fullmatch(token):
            raise PermissionDeniedError()
        return hash_token(token)

    @staticmethod
    def _accessor_checked(accessor: str) -> str:
        if not isinstance(accessor, str) or not _ACCESSOR_RE.fullmatch(accessor):
            raise InvalidRequestError("malformed accessor")
        return accessor

    def _expired(self, info: TokenInfo) -> bool:
        if info.num_uses_left is not None and info.num_uses_left <= 0:
            return True
        return info.expire_time is not None and self._clock.now() >= info.expire_time

    async def _load(self, token_hash: str) -> StoredToken | None:
        rec = await self._storage.get(_TOKEN_KEY + token_hash)
        if rec is None:
            return None
        stored = StoredToken.decode(rec.value, rec.revision)
        # SECURITY: constant-time check that the record is the one for this hash.
        if not hmac.compare_digest(stored.token_hash, token_hash):
            return None
        return stored

    async def _load_valid(self, token_hash: str) -> StoredToken:
        rec = await self._load(token_hash)
        if rec is None:
            raise PermissionDeniedError()
        if self._expired(rec.info):
            self._cache.pop(token_hash, None)
            # Best-effort tidy-up; the token is refused either way.
            with contextlib.suppress(VaultsideError):
                await self.revoke_accessor(rec.info.accessor)
            raise PermissionDeniedError()
        return rec

    async def _load_accessor(self, accessor: str) -> StoredToken | None:
        ref = await self._storage.get(_ACCESSOR_KEY + accessor)
        if ref is None:
            return None
        return await self._load(ref.value.decode())

    def changed(self, key: str | None) -> None:
        """Another server changed ``key`` of this store's view (None: anything): drop it."""
        if key is None:
            self.invalidate()
        elif key.startswith(_TOKEN_KEY):
            self.invalidate(key[len(_TOKEN_KEY) :])

    def invalidate(self, token_hash: str | None = None) -> None:
        """Drop one cached token (by storage hash) or, with None, all (changed elsewhere)."""
        if token_hash is None:
            self._cache.clear()
        else:
            self._cache.pop(token_hash, None)

    def _remember(self, rec: StoredToken) -> None:
        if len(self._cache) >= self._cache_size:
            del self._cache[next(iter(self._cache))]
        self._cache[rec.token_hash] = _CacheEntry(rec.info, rec.token_hash, self._clock.monotonic())

    # -- renewal and revocation -------------------------------------------------------------

    async def renew(self, accessor: str, increment: float | None) -> TokenInfo:
        """Extend the token's expiry to now + increment (or its TTL), never past its max.

        ``NotFoundError`` if unknown; ``InvalidRequestError`` if not renewable.
        """
        self._accessor_checked(accessor)
        if increment is not None and not increment > 0:
            raise InvalidRequestError("increment must be positive")
        for _ in range(_CAS_RETRIES):
            rec = await self._load_accessor(accessor)
            if rec is None or self._expired(rec.info):
                raise NotFoundError("no token with this accessor")
            info = rec.info
            if info.expire_time is None:
                return info
            if not info.renewable:
                raise InvalidRequestError("token is not renewable")
            now = self._clock.now()
            expire = now + (increment if increment is not None else (info.ttl or 0))
            if rec.max_expire_time is not None:
                expire = min(expire, rec.max_expire_time)
            if info.parent_accessor is not None:
                parent = await self._load_accessor(info.parent_accessor)
                if parent is None:
                    raise NotFoundError("no token with this accessor")
                if parent.info.expire_time is not None:
                    expire = min(expire, parent.info.expire_time)
            expire = max(expire, info.expire_time)
            renewed = replace(rec, info=replace(info, expire_time=expire))
            try:
                await self._storage.put(
                    _TOKEN_KEY + rec.token_hash, renewed.encode(), expect_revision=rec.revision
                )
            except ConflictError:
                continue
            self._cache.pop(rec.token_hash, None)
            return renewed.info
        raise ConflictError("token renewal kept conflicting; try again")

    async def tidy(self, *, page: int = 500) -> int:
        """Revoke every expired or used-up token still in storage; returns how many.

        Expired tokens are refused anyway; this only reclaims their records. Safe to run
        in several processes at once.
        """
        removed, after = 0, ""
        while True:
            keys = await self._storage.list(_TOKEN_KEY, after=after, limit=page)
            if not keys:
                return removed
            after = keys[-1]
            for key in keys:
                rec = await self._storage.get(key)
                if rec is None:
                    continue
                info = StoredToken.decode(rec.value, rec.revision).info
                if self._expired(info):
                    await self.revoke_accessor(info.accessor)
                    removed += 1

    async def revoke(self, token: str) -> None:
        """Revoke the token and all its descendants; a no-op for an unknown token."""
        try:
            token_hash = self._hash_checked(token)
        except PermissionDeniedError:
            return
        rec = await self._load(token_hash)
        if rec is not None:
            await self.revoke_accessor(rec.info.accessor)

    async def revoke_accessor(self, accessor: str) -> None:
        """Revoke by accessor, children first, recursively; a no-op if already gone."""
        self._accessor_checked(accessor)
        # Iterative post-order walk: deep chains cannot exhaust the Python stack.
        stack: list[tuple[str, bool]] = [(accessor, False)]
        while stack:
            acc, children_done = stack.pop()
            if children_done:
                if await self._revoke_one(acc):
                    stack.append((acc, False))  # a child appeared meanwhile: go again
                continue
            stack.append((acc, True))
            stack.extend((child, False) for child in await self._children(acc))

    async def _children(self, accessor: str) -> list[str]:
        prefix = f"{_CHILDREN_KEY}{accessor}/"
        return [k[len(prefix) :] for k in await self._storage.list(prefix)]

    async def _revoke_one(self, accessor: str) -> bool:
        """Delete one token whose children are gone; True if it must be retried."""
        ref = await self._storage.get(_ACCESSOR_KEY + accessor)
        if ref is None:
            return False
        token_hash = ref.value.decode()
        self._cache.pop(token_hash, None)
        rec = await self._storage.get(_TOKEN_KEY + token_hash)
        if await self._children(accessor):
            return True
        ops: list[Put | Delete] = [Delete(_ACCESSOR_KEY + accessor)]
        parent: str | None = None
        if rec is not None:
            ops.append(Delete(_TOKEN_KEY + token_hash, expect_revision=rec.revision))
            parent = StoredToken.decode(rec.value, rec.revision).info.parent_accessor
        if parent is not None:
            ops.append(Delete(f"{_CHILDREN_KEY}{parent}/{accessor}"))
        try:
            await self._storage.write_batch(ops)
        except ConflictError:
            return True
        self._cache.pop(token_hash, None)
        return False
