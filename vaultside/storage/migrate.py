"""Copy every record from one storage backend to another, then verify the copy.

Runs *below* the barrier: it moves ciphertext as stored (same keys, same bytes), never
decrypts and never needs the root key. That is safe because the barrier's AAD binds each
ciphertext to its key and key term, not to the backend or the storage revision, so the
destination's new revisions leave every record valid.

The copy is offline: stop every vaultside server on the source first, or a write made
during the copy may be missed (the verification pass then reports it). Leases (scheduler
leader, rotation locks) are not copied: they are short-lived and re-taken on start.

Verification reads both sides again and compares the number of records and a SHA-256 per
record over (key, value); a manifest digest over all of them is reported so two runs can be
compared. Errors callers should handle: ``ConflictError`` (destination not empty, not
forced), ``IntegrityError`` (verification found a difference), plus the backends' own
``UpstreamUnavailableError``.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from vaultside.errors import ConflictError, IntegrityError
from vaultside.storage.base import Delete, Put, StorageBackend

PAGE = 500


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a backend holds: record count, total value bytes and a digest over every record."""

    count: int
    value_bytes: int
    digest: str
    # key → SHA-256 of (key, value), to find which records differ.
    hashes: dict[str, str] = field(repr=False)


@dataclass(frozen=True, slots=True)
class MigrationReport:
    """The outcome of ``migrate``: what was copied and the verified manifests."""

    copied: int
    removed: int
    source: Manifest
    destination: Manifest


def record_hash(key: str, value: bytes) -> str:
    """SHA-256 over the key and the (ciphertext) value, length-prefixed so they cannot blur."""
    raw = key.encode()
    h = hashlib.sha256()
    h.update(len(raw).to_bytes(8, "big"))
    h.update(raw)
    h.update(value)
    return h.hexdigest()


async def iter_keys(backend: StorageBackend, prefix: str = "") -> AsyncIterator[str]:
    """Every key under ``prefix`` in order, page by page."""
    after = ""
    while True:
        page = await backend.list(prefix, after=after, limit=PAGE)
        for key in page:
            yield key
        if len(page) < PAGE:
            return
        after = page[-1]


async def manifest(backend: StorageBackend) -> Manifest:
    """Read every record of ``backend`` and summarise it (counts and per-record hashes)."""
    hashes: dict[str, str] = {}
    total = hashlib.sha256()
    size = 0
    async for key in iter_keys(backend):
        rec = await backend.get(key)
        if rec is None:  # deleted while listing
            continue
        digest = record_hash(key, rec.value)
        hashes[key] = digest
        total.update(bytes.fromhex(digest))
        size += len(rec.value)
    return Manifest(len(hashes), size, total.hexdigest(), hashes)


def differences(source: Manifest, destination: Manifest) -> list[str]:
    """Keys that are missing, extra or different in ``destination`` (sorted)."""
    keys = source.hashes.keys() | destination.hashes.keys()
    return sorted(k for k in keys if source.hashes.get(k) != destination.hashes.get(k))


async def migrate(
    source: StorageBackend,
    destination: StorageBackend,
    *,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
) -> MigrationReport:
    """Copy every record of ``source`` into ``destination`` and verify; both must be open.

    A destination that already holds records is refused (``ConflictError``) unless
    ``force``, which first deletes everything there. Records are written in batches with
    ``expect_revision=0``, so a concurrent writer on the destination makes the copy fail
    rather than be silently overwritten.
    """
    removed = 0
    if await destination.list("", limit=1):
        if not force:
            raise ConflictError(
                "the destination storage is not empty; use --force to replace its contents"
            )
        removed = await _clear(destination)
    copied = 0
    batch: list[Put | Delete] = []
    async for key in iter_keys(source):
        rec = await source.get(key)
        if rec is None:
            continue
        # SECURITY: ciphertext is copied as-is; nothing here can (or tries to) decrypt it.
        batch.append(Put(key, rec.value, expect_revision=0))
        if len(batch) >= PAGE:
            await destination.write_batch(batch)
            copied += len(batch)
            batch = []
            if progress is not None:
                progress(copied)
    if batch:
        await destination.write_batch(batch)
        copied += len(batch)
        if progress is not None:
            progress(copied)
    report = await verify(source, destination)
    return MigrationReport(copied, removed, report[0], report[1])


async def verify(source: StorageBackend, destination: StorageBackend) -> tuple[Manifest, Manifest]:
    """Both manifests if the backends hold exactly the same records; else ``IntegrityError``."""
    src, dst = await manifest(source), await manifest(destination)
    diff = differences(src, dst)
    if diff:
        # Keys are not named: some end in token hashes, which stay out of messages.
        raise IntegrityError(
            f"verification failed: {len(diff)} record(s) differ"
            f" (source {src.count}, destination {dst.count})"
        )
    return src, dst


async def _clear(backend: StorageBackend) -> int:
    removed = 0
    while True:
        page = await backend.list("", limit=PAGE)
        if not page:
            return removed
        await backend.write_batch([Delete(k) for k in page])
        removed += len(page)
