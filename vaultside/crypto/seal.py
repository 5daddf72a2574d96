"""Seals: where the root key that unlocks the keyring comes from.

``FileSeal`` reads a raw 32-byte key file (mode 0600, made by ``init_key_file``).
``PassphraseSeal`` derives the key from a passphrase file with argon2id (memory-hard); the
salt file is JSON holding the salt and the argon2 parameters, so changing defaults later never
changes the key of an existing deployment. A wrong passphrase yields a different key, which
the barrier detects because the keyring then fails to decrypt ("wrong root key").

Errors callers should handle: ``SealedError`` (no usable root key; the server stays sealed).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from argon2.low_level import Type, hash_secret_raw

from vaultside.errors import ConflictError, SealedError

ROOT_KEY_BYTES = 32
SALT_BYTES = 16
# argon2id defaults: RFC 9106 "second recommended option" (64 MiB, t=3, p=4).
DEFAULT_TIME_COST = 3
DEFAULT_MEMORY_KIB = 64 * 1024
DEFAULT_PARALLELISM = 4


@dataclass(frozen=True, slots=True)
class _KdfParams:
    salt: bytes
    time_cost: int
    memory_kib: int
    parallelism: int


class Seal(Protocol):
    """Produces the 32-byte root key, or raises ``SealedError`` saying why it cannot."""

    kind: str

    async def root_key(self) -> bytes:
        """The root key (32 bytes)."""
        ...


def _create_exclusive(path: Path, content: bytes) -> None:
    """Write ``content`` to a new 0600 file; ``ConflictError`` if it already exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise ConflictError(f"{path} already exists; refusing to overwrite it") from exc
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, content)
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_private(path: Path, what: str) -> bytes:
    """Read a file that must be private to its owner; ``SealedError`` otherwise."""
    try:
        st = path.stat()
    except FileNotFoundError as exc:
        raise SealedError(f"{what} {path} does not exist") from exc
    except OSError as exc:
        raise SealedError(f"{what} {path} cannot be read: {exc.strerror}") from exc
    # SECURITY: refuse keys others could have read; a leaked root key decrypts everything.
    if st.st_mode & 0o077:
        mode = stat.S_IMODE(st.st_mode)
        raise SealedError(
            f"{what} {path} is accessible by group/others (mode {mode:04o}); run chmod 600 on it"
        )
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SealedError(f"{what} {path} cannot be read: {exc.strerror}") from exc


def init_key_file(path: Path) -> None:
    """Create a new random root key file (mode 0600); ``ConflictError`` if it exists."""
    _create_exclusive(path, os.urandom(ROOT_KEY_BYTES))


def init_passphrase_salt(
    path: Path,
    *,
    time_cost: int = DEFAULT_TIME_COST,
    memory_kib: int = DEFAULT_MEMORY_KIB,
    parallelism: int = DEFAULT_PARALLELISM,
) -> None:
    """Create the salt file (random salt + argon2id parameters); ``ConflictError`` if it exists."""
    doc = {
        "kdf": "argon2id",
        "salt": base64.b64encode(os.urandom(SALT_BYTES)).decode("ascii"),
        "time_cost": time_cost,
        "memory_kib": memory_kib,
        "parallelism": parallelism,
    }
    _create_exclusive(path, json.dumps(doc).encode("utf-8") + b"\n")


class FileSeal:
    """Root key read from a raw 32-byte file readable only by its owner."""

    kind = "file"

    def __init__(self, path: Path) -> None:
        self.path = path

    def __repr__(self) -> str:
        return f"FileSeal({str(self.path)!r})"

    def _load(self) -> bytes:
        key = _read_private(self.path, "root key file")
        if len(key) != ROOT_KEY_BYTES:
            raise SealedError(
                f"root key file {self.path} holds {len(key)} bytes, expected {ROOT_KEY_BYTES}"
            )
        return key

    async def root_key(self) -> bytes:
        """Read the key file (off the event loop)."""
        return await asyncio.to_thread(self._load)


class PassphraseSeal:
    """Root key derived with argon2id from a passphrase file and a salt file."""

    kind = "passphrase"

    def __init__(self, passphrase_file: Path, salt_file: Path) -> None:
        self.passphrase_file = passphrase_file
        self.salt_file = salt_file

    def __repr__(self) -> str:
        return f"PassphraseSeal({str(self.passphrase_file)!r}, {str(self.salt_file)!r})"

    def _params(self) -> _KdfParams:
        try:
            doc = json.loads(self.salt_file.read_bytes())
            params = _KdfParams(
                salt=base64.b64decode(doc["salt"], validate=True),
                time_cost=int(doc["time_cost"]),
                memory_kib=int(doc["memory_kib"]),
                parallelism=int(doc["parallelism"]),
            )
        except FileNotFoundError as exc:
            raise SealedError(f"salt file {self.salt_file} does not exist") from exc
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SealedError(f"salt file {self.salt_file} is unreadable or malformed") from exc
        if doc.get("kdf") != "argon2id" or len(params.salt) < SALT_BYTES:
            raise SealedError(f"salt file {self.salt_file} is not an argon2id salt file")
        return params

    def _derive(self) -> bytes:
        params = self._params()
        secret = bytearray(_read_private(self.passphrase_file, "passphrase file"))
        try:
            # A trailing newline is what editors and `echo` add; it is not part of the secret.
            while secret and secret[-1] in b"\r\n":
                del secret[-1]
            if not secret:
                raise SealedError(f"passphrase file {self.passphrase_file} is empty")
            return hash_secret_raw(
                secret=bytes(secret),
                salt=params.salt,
                time_cost=params.time_cost,
                memory_cost=params.memory_kib,
                parallelism=params.parallelism,
                hash_len=ROOT_KEY_BYTES,
                type=Type.ID,
            )
        finally:
            secret[:] = bytes(len(secret))

    async def root_key(self) -> bytes:
        """Derive the key (argon2id is CPU and memory heavy: runs in a worker thread)."""
        return await asyncio.to_thread(self._derive)
