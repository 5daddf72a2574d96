"""The barrier: a ``StorageBackend`` that encrypts everything on its way to the real one.

Layout in the underlying backend::

    core/keyring     the keyring, encrypted with the root key (term 0)
    core/rewrap      rewrap progress, encrypted with the active data key
    logical/<key>    each caller record, encrypted with a data key; AAD binds <key> and term

Code above never sees ciphertext; code below never sees plaintext. Every data method raises
``SealedError`` until ``unseal`` succeeds (``open``/``close`` work while sealed, because
unsealing reads the keyring). Another process sharing the storage may rotate the key: an
unknown term triggers a keyring reload, and the keyring revision is re-checked at most every
``refresh_seconds`` so new writes move to the new term.

Errors callers should handle: ``SealedError`` (503), ``IntegrityError`` (tampered or moved
ciphertext: log it, never retry), plus the backend's ``ConflictError`` and
``UpstreamUnavailableError``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vaultside.clock import Clock, SystemClock
from vaultside.crypto import aead
from vaultside.crypto.keyring import KEYRING_KEY, Keyring
from vaultside.crypto.seal import Seal
from vaultside.errors import ConflictError, IntegrityError, SealedError
from vaultside.storage.base import Delete, LockInspector, Op, Put, Record, StorageBackend

log = logging.getLogger(__name__)

LOGICAL = "logical/"
REWRAP_KEY = "core/rewrap"


@dataclass(slots=True)
class RewrapProgress:
    """Where a rewrap to ``target_term`` got to (persisted after every batch)."""

    target_term: int
    after: str = ""
    rewritten: int = 0
    done: bool = False


class Barrier:
    """Envelope-encrypting ``StorageBackend`` over an untrusted one; see the module docstring."""

    def __init__(
        self,
        backend: StorageBackend,
        seal: Seal,
        *,
        clock: Clock | None = None,
        refresh_seconds: float = 5.0,
    ) -> None:
        self._backend = backend
        self._seal = seal
        self._clock: Clock = clock or SystemClock()
        self._refresh_seconds = refresh_seconds
        self._ring: Keyring | None = None
        self._ring_revision = 0
        self._checked_at = 0.0
        # SECURITY: the root key lives only inside this cipher object while unsealed (it is
        # needed to re-encrypt the keyring on rotation) and is dropped on seal().
        self._root: AESGCM | None = None
        self._lock = asyncio.Lock()
        self._rewrap_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"Barrier(sealed={self.sealed}, seal={self._seal.kind!r})"

    @property
    def sealed(self) -> bool:
        """True until ``unseal`` succeeds, and again after ``seal``."""
        return self._ring is None

    # -- sealing -----------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the underlying backend (allowed while sealed)."""
        await self._backend.open()

    async def close(self) -> None:
        """Drop the keys and close the underlying backend."""
        await self.seal()
        await self._backend.close()

    async def unseal(self) -> None:
        """Load the root key and decrypt the keyring (creating it on first ever unseal).

        Raises ``SealedError`` if the seal cannot produce a key or the key is wrong.
        """
        async with self._lock:
            if self._ring is not None:
                return
            raw = await self._seal.root_key()
            if len(raw) != aead.KEY_BYTES:
                raise SealedError(f"the {self._seal.kind} seal produced a key of the wrong size")
            root = AESGCM(raw)
            del raw
            rec = await self._backend.get(KEYRING_KEY)
            if rec is None and await self._backend.list(LOGICAL, limit=1):
                # SECURITY: never paper over a lost keyring with a fresh one: the existing
                # records would become unreadable and the loss would go unnoticed.
                raise SealedError("the keyring is missing but encrypted records exist")
            if rec is None:
                ring = Keyring()
                ring.add_term(self._clock.now())
                try:
                    revision = await self._backend.put(
                        KEYRING_KEY, ring.seal_with(root), expect_revision=0
                    )
                    log.info("keyring created", extra={"term": ring.active_term})
                except ConflictError:  # another process initialised it first: use theirs
                    ring.wipe()
                    rec = await self._backend.get(KEYRING_KEY)
                    if rec is None:
                        raise IntegrityError("the keyring record disappeared") from None
            if rec is not None:
                ring, revision = self._open_ring(root, rec), rec.revision
            self._ring, self._root, self._ring_revision = ring, root, revision
            self._checked_at = self._clock.monotonic()

    @staticmethod
    def _open_ring(root: AESGCM, rec: Record) -> Keyring:
        try:
            return Keyring.unseal_with(root, rec.value)
        except IntegrityError as exc:
            raise SealedError(
                "wrong root key: the keyring does not decrypt with it"
                " (wrong key file or passphrase, or a tampered keyring)"
            ) from exc

    async def seal(self) -> None:
        """Drop the data keys and the root key from memory."""
        async with self._lock:
            if self._ring is not None:
                self._ring.wipe()
            self._ring, self._root = None, None

    def _unsealed(self) -> Keyring:
        if self._ring is None:
            raise SealedError()
        return self._ring

    async def _reload(self) -> Keyring:
        """Re-read the keyring (another process may have rotated it)."""
        async with self._lock:
            if self._root is None or self._ring is None:
                raise SealedError()
            rec = await self._backend.get(KEYRING_KEY)
            if rec is not None and rec.revision != self._ring_revision:
                old, self._ring = self._ring, self._open_ring(self._root, rec)
                self._ring_revision = rec.revision
                old.wipe()
            self._checked_at = self._clock.monotonic()
            return self._ring

    def keyring_changed(self) -> None:
        """Another server changed the keyring: re-read it before the next encryption."""
        self._checked_at = float("-inf")

    async def _cipher(self, term: int) -> AESGCM:
        cipher = self._unsealed().cipher(term)
        if cipher is None:
            cipher = (await self._reload()).cipher(term)
            if cipher is None:
                raise IntegrityError(f"ciphertext uses unknown key term {term}")
        return cipher

    async def _active(self) -> tuple[int, AESGCM]:
        ring = self._unsealed()
        if self._clock.monotonic() - self._checked_at >= self._refresh_seconds:
            ring = await self._reload()
        return ring.active_cipher()

    # -- StorageBackend ----------------------------------------------------------------------

    def stored_key(self, key: str) -> str:
        """The name ``key`` is stored under in the backend below (``logical/<key>``)."""
        return LOGICAL + key

    async def get(self, key: str) -> Record | None:
        """Read and decrypt ``key``."""
        self._unsealed()
        rec = await self._backend.get(LOGICAL + key)
        if rec is None:
            return None
        term = aead.read_term(rec.value)
        plain = aead.decrypt(await self._cipher(term), term, key, rec.value)
        return Record(plain, rec.revision)

    async def _encrypt(self, key: str, value: bytes) -> bytes:
        term, cipher = await self._active()
        return aead.encrypt(cipher, term, key, value)

    async def put(self, key: str, value: bytes, *, expect_revision: int | None = None) -> int:
        """Encrypt with the active data key and store."""
        blob = await self._encrypt(key, value)
        return await self._backend.put(LOGICAL + key, blob, expect_revision=expect_revision)

    async def delete(self, key: str, *, expect_revision: int | None = None) -> bool:
        """Delete ``key`` (crypto-shred: the ciphertext record is removed)."""
        self._unsealed()
        return await self._backend.delete(LOGICAL + key, expect_revision=expect_revision)

    async def list(self, prefix: str, *, after: str = "", limit: int | None = None) -> list[str]:
        """Keys under ``prefix`` (keys are not secret; they are stored in the clear)."""
        self._unsealed()
        keys = await self._backend.list(
            LOGICAL + prefix, after=LOGICAL + after if after else "", limit=limit
        )
        return [k[len(LOGICAL) :] for k in keys]

    async def write_batch(self, ops: Sequence[Op]) -> None:
        """Encrypt every put, then apply all ops atomically."""
        self._unsealed()
        lowered: list[Op] = []
        for op in ops:
            if isinstance(op, Put):
                blob = await self._encrypt(op.key, op.value)
                lowered.append(Put(LOGICAL + op.key, blob, op.expect_revision))
            else:
                lowered.append(Delete(LOGICAL + op.key, op.expect_revision))
        await self._backend.write_batch(lowered)

    async def try_lock(self, name: str, holder: str, ttl: float) -> bool:
        """Take or renew a lease (leases hold no secrets)."""
        self._unsealed()
        return await self._backend.try_lock(name, holder, ttl)

    async def unlock(self, name: str, holder: str) -> None:
        """Release a lease."""
        self._unsealed()
        await self._backend.unlock(name, holder)

    async def lock_holder(self, name: str) -> tuple[str, float] | None:
        """Who holds a lease, if the backend can tell (``LockInspector``); else None."""
        self._unsealed()
        if isinstance(self._backend, LockInspector):
            return await self._backend.lock_holder(name)
        return None

    # -- key management ------------------------------------------------------------------------

    async def rotate_key(self) -> int:
        """Add a new data key and make it active for new writes; returns its term."""
        async with self._lock:
            if self._root is None or self._ring is None:
                raise SealedError()
            while True:
                rec = await self._backend.get(KEYRING_KEY)
                if rec is None:
                    raise IntegrityError("the keyring record disappeared")
                ring = self._open_ring(self._root, rec)
                term = ring.add_term(self._clock.now())
                try:
                    revision = await self._backend.put(
                        KEYRING_KEY, ring.seal_with(self._root), expect_revision=rec.revision
                    )
                except ConflictError:  # a concurrent rotation elsewhere: start over
                    ring.wipe()
                    continue
                old, self._ring, self._ring_revision = self._ring, ring, revision
                old.wipe()
                self._checked_at = self._clock.monotonic()
                log.info("data key rotated", extra={"term": term})
                return term

    async def _load_progress(self) -> RewrapProgress | None:
        rec = await self._backend.get(REWRAP_KEY)
        if rec is None:
            return None
        term = aead.read_term(rec.value)
        doc = json.loads(aead.decrypt(await self._cipher(term), term, REWRAP_KEY, rec.value))
        return RewrapProgress(**doc)

    async def _save_progress(self, progress: RewrapProgress) -> None:
        term, cipher = self._unsealed().active_cipher()
        blob = aead.encrypt(cipher, term, REWRAP_KEY, json.dumps(asdict(progress)).encode())
        await self._backend.put(REWRAP_KEY, blob)

    async def _rewrap_one(self, lower_key: str, target: int, cipher: AESGCM) -> bool:
        rec = await self._backend.get(lower_key)
        if rec is None:
            return False
        term = aead.read_term(rec.value)
        if term >= target:
            return False
        key = lower_key[len(LOGICAL) :]
        plain = aead.decrypt(await self._cipher(term), term, key, rec.value)
        blob = aead.encrypt(cipher, target, key, plain)
        try:
            # The revision check means a concurrent write (already under the new key) is
            # never overwritten with this older value.
            await self._backend.put(lower_key, blob, expect_revision=rec.revision)
        except ConflictError:
            return False
        return True

    async def rewrap(self, batch_size: int = 500) -> int:
        """Re-encrypt records not under the active key; resumable; returns how many it rewrote.

        Progress is persisted after each batch, so an interrupted run resumes where it
        stopped. Each batch's puts are issued concurrently (the backend group-commits them).
        """
        async with self._rewrap_lock:
            # Another process may have rotated since we last looked: rewrap to the newest term.
            target, cipher = (await self._reload()).active_cipher()
            progress = await self._load_progress()
            if progress is None or progress.target_term != target:
                progress = RewrapProgress(target_term=target)
            if progress.done:
                return 0
            count = 0
            while not progress.done:
                keys = await self._backend.list(LOGICAL, after=progress.after, limit=batch_size)
                results = await asyncio.gather(*(self._rewrap_one(k, target, cipher) for k in keys))
                count += sum(results)
                progress.rewritten += sum(results)
                if keys:
                    progress.after = keys[-1]
                progress.done = len(keys) < batch_size
                await self._save_progress(progress)
            log.info("rewrap finished", extra={"term": target, "rewritten": count})
            return count

    async def key_status(self) -> dict[str, object]:
        """Terms, active term and rewrap progress (never key material)."""
        ring = self._unsealed()
        progress = await self._load_progress()
        return {
            "sealed": False,
            "seal": self._seal.kind,
            "active_term": ring.active_term,
            "terms": [{"term": t.term, "created_time": t.created_time} for t in ring.terms],
            "rewrap": asdict(progress) if progress is not None else None,
        }
