"""The audit chain's key and anchor, kept in the barrier (encrypted, never a plain file), in
the view wiring gives the audit (``audit/``):

- ``chain-key``: 32 random bytes, created once (compare-and-set, so every worker and
  replica sharing the storage uses the same key). File sinks link records with an HMAC
  under it, so a record cannot be re-chained by someone who can only write the audit file.
- ``anchor/<sha256 of the chain id>``: the latest keyed link (``seq``, ``hash``,
  ``mac``) of one chain. The chain id names one server's audit file among the servers that
  share the storage (``audit.chain_id``; default ``<hostname>:<audit file path>``), so
  replicas each keep their own anchor. It only moves forward (compare-and-set on the
  revision, larger ``seq`` wins: the workers of one server agree), so ``audit verify
  --data-dir`` can tell a truncated tail, a deleted file or a chain restarted from genesis:
  the anchored record must be in the files, with that hash and MAC.

``ChainAnchor`` is a component: started after unseal, it hands the key to the file sinks and
writes the newest link they report in the background (coalesced: at most one storage write
in flight). Records written before unseal carry no ``mac``; the anchor may lag the file by
the write in flight, and ``close`` writes the final link.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
from collections.abc import Sequence

from vaultside.audit.chain import Link
from vaultside.audit.sinks import FileSink
from vaultside.errors import ConflictError, IntegrityError
from vaultside.storage.base import StorageBackend

log = logging.getLogger(__name__)

KEY_PATH = "chain-key"
ANCHOR_PREFIX = "anchor/"
_KEY_BYTES = 32
_CAS_RETRIES = 20


async def load_or_create_key(storage: StorageBackend) -> bytes:
    """The chain key from storage, created (once, by whoever is first) if missing."""
    rec = await storage.get(KEY_PATH)
    if rec is None:
        # Another worker may create it first (ConflictError): then use theirs.
        with contextlib.suppress(ConflictError):
            await storage.put(KEY_PATH, secrets.token_bytes(_KEY_BYTES), expect_revision=0)
        rec = await storage.get(KEY_PATH)
    if rec is None or len(rec.value) != _KEY_BYTES:
        raise IntegrityError("the audit chain key in storage is missing or malformed")
    return rec.value


async def load_key(storage: StorageBackend) -> bytes | None:
    """The chain key, or None if no server ever created one."""
    rec = await storage.get(KEY_PATH)
    return rec.value if rec is not None else None


def anchor_path(chain_id: str) -> str:
    """Where the anchor of chain ``chain_id`` is stored."""
    return ANCHOR_PREFIX + hashlib.sha256(chain_id.encode()).hexdigest()[:32]


async def load_anchor(storage: StorageBackend, chain_id: str) -> Link | None:
    """The latest anchored link of ``chain_id``, or None."""
    rec = await storage.get(anchor_path(chain_id))
    return _decode(rec.value) if rec is not None else None


def _decode(raw: bytes) -> Link:
    try:
        obj = json.loads(raw)
        return Link(int(obj["seq"]), str(obj["hash"]), str(obj["mac"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError("the audit anchor in storage is malformed") from exc


async def save_anchor(storage: StorageBackend, chain_id: str, link: Link) -> None:
    """Move the anchor of ``chain_id`` forward to ``link`` (never backwards)."""
    encoded = json.dumps(link.to_json(), sort_keys=True).encode()
    path = anchor_path(chain_id)
    for _ in range(_CAS_RETRIES):
        rec = await storage.get(path)
        if rec is not None and _decode(rec.value).seq >= link.seq:
            return
        try:
            await storage.put(path, encoded, expect_revision=rec.revision if rec else 0)
            return
        except ConflictError:
            continue
    raise ConflictError("audit anchor kept conflicting")


class ChainAnchor:
    """Component: gives file sinks the chain key and keeps the anchor up to date."""

    def __init__(self, storage: StorageBackend, sinks: Sequence[FileSink], chain_id: str) -> None:
        self._storage = storage
        self._sinks = list(sinks)
        self._chain_id = chain_id
        self._pending: Link | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def start(self) -> None:
        """Load (or create) the key and the anchor; hand them to the sinks."""
        if not self._sinks:
            return
        key = await load_or_create_key(self._storage)
        anchor = await load_anchor(self._storage, self._chain_id)
        for sink in self._sinks:
            sink.set_key(key, anchor, self.note)

    def note(self, link: Link) -> None:
        """A sink wrote up to ``link``: anchor it soon (called on the event loop)."""
        if self._closed:  # the barrier seals next; later records stay after the anchor
            return
        if self._pending is None or link.seq > self._pending.seq:
            self._pending = link
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._writer())

    async def _writer(self) -> None:
        while self._pending is not None:
            link, self._pending = self._pending, None
            try:
                await save_anchor(self._storage, self._chain_id, link)
            except Exception as exc:  # the next batch's link retries
                log.error("audit anchor not saved", extra={"error_type": type(exc).__name__})
                return

    async def close(self) -> None:
        """Write the last link reported."""
        self._closed = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        if self._pending is not None:
            with contextlib.suppress(Exception):
                await self._writer()
