"""Versioned secrets with Vault KV v2 semantics, stored through the barrier.

Every change writes the metadata record with a revision check inside one ``write_batch``
together with the data records it creates or removes, so concurrent writers (also in other
processes) get distinct consecutive version numbers and nothing is ever half-written. Writers
to one path in this process queue on a per-path lock; a lost race against another process is
retried unless the caller gave ``cas``. Versions beyond ``max_versions`` (the secret's, or the
store default when 0; 0 for both = unlimited) are dropped oldest first, ciphertext included.
``destroy`` deletes a version's ciphertext record (crypto-shred); ``delete_versions`` only
marks versions deleted so ``undelete`` can restore them.

Errors callers should handle: ``InvalidRequestError`` (bad path, data, metadata, missing
required ``cas``), ``PayloadTooLargeError``, ``ConflictError`` (``cas`` mismatch),
``NotFoundError``, and whatever the storage below raises (``SealedError``, 503s).
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import AsyncIterator, Callable

from vaultside.clock import Clock
from vaultside.errors import ConflictError, IntegrityError, InvalidRequestError, NotFoundError
from vaultside.kv.models import SecretMeta, SecretVersion, VersionMeta
from vaultside.kv.paths import validate_path, validate_prefix
from vaultside.kv.record import (
    META_PREFIX,
    MetaRecord,
    VersionRecord,
    data_key,
    meta_key,
)
from vaultside.kv.validation import (
    MAX_VERSIONS_LIMIT,
    check_custom_metadata,
    check_type,
    check_versions,
    encode_data,
)
from vaultside.storage.base import Delete, Op, Put, StorageBackend

_RETRIES = 100
_PAGE = 500
_SKIP = "\U0010ffff"

# A mutation of the metadata record; returns the extra ops (data deletes) to apply with it.
_Mutation = Callable[[MetaRecord], list[Op]]


class KVStore:
    """Versioned secrets over a ``StorageBackend`` (normally the barrier)."""

    def __init__(
        self,
        storage: StorageBackend,
        *,
        clock: Clock,
        max_value_bytes: int = 65536,
        default_max_versions: int = 10,
    ) -> None:
        self._storage = storage
        self._clock = clock
        self.max_value_bytes = max_value_bytes
        self.default_max_versions = default_max_versions
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def _lock(self, path: str) -> asyncio.Lock:
        lock = self._locks.get(path)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[path] = lock
        return lock

    async def _load(self, path: str) -> tuple[MetaRecord | None, int]:
        rec = await self._storage.get(meta_key(path))
        if rec is None:
            return None, 0
        return MetaRecord.decode(rec.value), rec.revision

    async def _load_existing(self, path: str) -> tuple[MetaRecord, int]:
        meta, revision = await self._load(path)
        if meta is None:
            raise NotFoundError(f"no secret at {path!r}")
        return meta, revision

    def _retention(self, path: str, meta: MetaRecord) -> list[Op]:
        limit = meta.max_versions or self.default_max_versions
        ops: list[Op] = []
        while limit > 0 and len(meta.versions) > limit:
            oldest = min(meta.versions)
            del meta.versions[oldest]
            # SECURITY: dropped versions lose their ciphertext, not just their metadata.
            ops.append(Delete(data_key(path, oldest)))
        return ops

    # -- writes --------------------------------------------------------------------------------

    async def put(
        self,
        path: str,
        data: dict[str, str],
        *,
        cas: int | None = None,
        secret_type: str | None = None,
    ) -> VersionMeta:
        """Write a new version; ``cas`` must equal the current version (0: must not exist)."""
        path = validate_path(path)
        payload = encode_data(data, self.max_value_bytes)
        if secret_type is not None:
            check_type(secret_type)
        if cas is not None and (isinstance(cas, bool) or not isinstance(cas, int) or cas < 0):
            raise InvalidRequestError("cas must be a non-negative integer")
        async with self._lock(path):
            for _ in range(_RETRIES):
                meta, revision = await self._load(path)
                now = self._clock.now()
                if meta is None:
                    meta = MetaRecord(secret_type or "generic", now, now)
                if cas is None and meta.cas_required:
                    raise InvalidRequestError(
                        f"secret {path!r} requires check-and-set: pass cas (current version"
                        f" {meta.current_version})"
                    )
                if cas is not None and cas != meta.current_version:
                    raise ConflictError(
                        f"check-and-set failed: cas does not match the current version"
                        f" ({meta.current_version})"
                    )
                version = meta.current_version + 1
                meta.current_version = version
                meta.updated_time = now
                meta.versions[version] = VersionRecord(now)
                if secret_type is not None:
                    meta.secret_type = secret_type
                ops: list[Op] = [Put(data_key(path, version), payload)]
                ops += self._retention(path, meta)
                ops.append(Put(meta_key(path), meta.encode(), revision))
                try:
                    await self._storage.write_batch(ops)
                except ConflictError:
                    continue  # another process wrote first: re-read and re-check cas
                return meta.version_meta(version)
        raise ConflictError(f"secret {path!r} is changing too fast; retry")

    async def _update(self, path: str, mutate: _Mutation, *, create: bool = False) -> MetaRecord:
        path = validate_path(path)
        async with self._lock(path):
            for _ in range(_RETRIES):
                meta, revision = await self._load(path)
                if meta is None:
                    if not create:
                        raise NotFoundError(f"no secret at {path!r}")
                    now = self._clock.now()
                    meta = MetaRecord("generic", now, now)
                extra = mutate(meta)
                try:
                    await self._storage.write_batch(
                        [*extra, Put(meta_key(path), meta.encode(), revision)]
                    )
                except ConflictError:
                    continue
                return meta
        raise ConflictError(f"secret {path!r} is changing too fast; retry")

    async def delete_versions(self, path: str, versions: list[int] | None) -> None:
        """Soft-delete versions (None = the current one); unknown versions are ignored."""
        wanted = check_versions(versions)
        now = self._clock.now()

        def mutate(meta: MetaRecord) -> list[Op]:
            for n in wanted if wanted is not None else [meta.current_version]:
                v = meta.versions.get(n)
                if v is not None and v.deletion_time is None and not v.destroyed:
                    v.deletion_time = now
            meta.updated_time = now
            return []

        await self._update(path, mutate)

    async def undelete(self, path: str, versions: list[int]) -> None:
        """Restore soft-deleted versions (destroyed ones stay gone)."""
        wanted = check_versions(versions) or []

        def mutate(meta: MetaRecord) -> list[Op]:
            for n in wanted:
                v = meta.versions.get(n)
                if v is not None and not v.destroyed:
                    v.deletion_time = None
            meta.updated_time = self._clock.now()
            return []

        await self._update(path, mutate)

    async def destroy(self, path: str, versions: list[int]) -> None:
        """Crypto-shred versions: their ciphertext records are deleted for good."""
        wanted = check_versions(versions) or []

        def mutate(meta: MetaRecord) -> list[Op]:
            ops: list[Op] = []
            for n in wanted:
                v = meta.versions.get(n)
                if v is not None and not v.destroyed:
                    v.destroyed = True
                    ops.append(Delete(data_key(path, n)))
            meta.updated_time = self._clock.now()
            return ops

        await self._update(path, mutate)

    async def write_metadata(
        self,
        path: str,
        *,
        max_versions: int | None = None,
        custom_metadata: dict[str, str] | None = None,
        secret_type: str | None = None,
        cas_required: bool | None = None,
    ) -> SecretMeta:
        """Change settings (creating the metadata if absent); lowering ``max_versions`` prunes."""
        if max_versions is not None and (
            isinstance(max_versions, bool)
            or not isinstance(max_versions, int)
            or not 0 <= max_versions <= MAX_VERSIONS_LIMIT
        ):
            raise InvalidRequestError(f"max_versions must be 0-{MAX_VERSIONS_LIMIT}")
        custom = None if custom_metadata is None else check_custom_metadata(custom_metadata)
        if secret_type is not None:
            check_type(secret_type)
        if cas_required is not None and not isinstance(cas_required, bool):
            raise InvalidRequestError("cas_required must be a boolean")

        def mutate(meta: MetaRecord) -> list[Op]:
            if max_versions is not None:
                meta.max_versions = max_versions
            if custom is not None:
                meta.custom_metadata = dict(custom)
            if secret_type is not None:
                meta.secret_type = secret_type
            if cas_required is not None:
                meta.cas_required = cas_required
            meta.updated_time = self._clock.now()
            return self._retention(path, meta)

        meta = await self._update(path, mutate, create=True)
        return meta.public(path)

    async def delete_all(self, path: str) -> None:
        """Remove the metadata and every version's ciphertext (idempotent)."""
        path = validate_path(path)
        async with self._lock(path):
            for _ in range(_RETRIES):
                meta, revision = await self._load(path)
                if meta is None:
                    return
                ops: list[Op] = [Delete(data_key(path, n)) for n in meta.versions]
                ops.append(Delete(meta_key(path), revision))
                try:
                    await self._storage.write_batch(ops)
                except ConflictError:
                    continue
                return
        raise ConflictError(f"secret {path!r} is changing too fast; retry")

    # -- reads ---------------------------------------------------------------------------------

    async def get(self, path: str, version: int | None = None) -> SecretVersion:
        """A version's data (default: current); ``NotFoundError`` if absent, deleted, destroyed."""
        path = validate_path(path)
        meta, _ = await self._load_existing(path)
        number = meta.current_version if version is None else version
        v = meta.versions.get(number)
        if v is None:
            raise NotFoundError(f"secret {path!r} has no version {number}")
        if v.destroyed:
            raise NotFoundError(f"version {number} of {path!r} was destroyed")
        if v.deletion_time is not None:
            raise NotFoundError(f"version {number} of {path!r} is deleted")
        rec = await self._storage.get(data_key(path, number))
        if rec is None:
            raise NotFoundError(f"secret {path!r} has no version {number}")
        try:
            data = json.loads(rec.value)
        except ValueError as exc:
            raise IntegrityError(f"data of {path!r} version {number} is malformed") from exc
        return SecretVersion(path, data, meta.version_meta(number), meta.secret_type)

    async def exists(self, path: str) -> bool:
        """True if the path has metadata (even when every version is deleted)."""
        return await self._storage.get(meta_key(validate_path(path))) is not None

    async def read_metadata(self, path: str) -> SecretMeta:
        """The secret's metadata and versions; ``NotFoundError`` if absent."""
        path = validate_path(path)
        meta, _ = await self._load_existing(path)
        return meta.public(path)

    async def revision(self, path: str) -> int:
        """A number that changes on every change to the secret (0 if absent); for ETags."""
        rec = await self._storage.get(meta_key(validate_path(path)))
        return 0 if rec is None else rec.revision

    async def list(self, prefix: str) -> list[str]:
        """Direct children of ``prefix`` (with or without trailing ``/``); dirs end with ``/``."""
        base = validate_prefix(prefix).rstrip("/")
        under = META_PREFIX + (base + "/" if base else "")
        found: set[str] = set()
        after = ""
        while True:
            keys = await self._storage.list(under, after=after, limit=_PAGE)
            for key in keys:
                head, sep, _ = key[len(under) :].partition("/")
                if sep:
                    found.add(head + "/")
                    # Skip the rest of that sub-tree: path characters sort below U+10FFFF.
                    after = under + head + "/" + _SKIP
                    break
                found.add(head)
                after = key
            else:
                if len(keys) < _PAGE:
                    return sorted(found)

    async def all_values(self) -> AsyncIterator[tuple[str, int, dict[str, str]]]:
        """Every live version's data as ``(path, version, data)``, for the scanner."""
        after = ""
        while True:
            keys = await self._storage.list(META_PREFIX, after=after, limit=_PAGE)
            for key in keys:
                path = key[len(META_PREFIX) :]
                meta, _ = await self._load(path)
                if meta is None:
                    continue
                for number in sorted(meta.versions):
                    if not meta.versions[number].live:
                        continue
                    rec = await self._storage.get(data_key(path, number))
                    if rec is not None:
                        yield path, number, json.loads(rec.value)
            if len(keys) < _PAGE:
                return
            after = keys[-1]
