"""The keyword prefilter's Hyperscan database, compiled once per rule set and kept on disk.

Compiling the ~200 keywords takes ~9 ms, on every ``vaultside scan``; loading the serialized
database takes well under one. With a ``cache_dir`` (the CLI passes
``$XDG_CACHE_HOME/vaultside``, else ``~/.cache/vaultside``), the database is stored as
``hyperscan/<key>.db``:

- ``<key>`` is the SHA-256 of what was compiled (this format's version, Hyperscan's version,
  the mode, every expression with its flags): other rules, another Hyperscan, another name;
- the file holds the SHA-256 of the serialized database, then the database. A file whose
  digest does not match, that Hyperscan will not load (another CPU or version), that is not
  owned by this user, or that sits in a directory others can write, is not used: the
  database is compiled, as without a cache, and written again (to a temporary name, then
  renamed). Failing to write is not an error.

The database holds keywords only (public rule data), never scanned bytes or secrets. A
loaded database finds exactly what the compiled one does (``tests/unit/scan/test_hscache.py``).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import hyperscan

_FORMAT = b"vaultside-hs-1"
_MODE = hyperscan.HS_MODE_BLOCK
_DIGEST = 32


def keyword_database(keywords: Sequence[bytes], cache_dir: Path | None) -> hyperscan.Database:
    """A block-mode database matching every keyword (literal, case-insensitive), id = index."""
    expressions = [re.escape(k) for k in keywords]
    flags = [hyperscan.HS_FLAG_CASELESS] * len(expressions)
    path = _path(cache_dir, expressions, flags) if cache_dir is not None else None
    if path is not None:
        db = _load(path)
        if db is not None:
            return db
    db = hyperscan.Database(mode=_MODE)
    db.compile(
        expressions=expressions,
        ids=list(range(len(expressions))),
        elements=len(expressions),
        flags=flags,
    )
    if path is not None:
        _store(path, hyperscan.dumpb(db))
    return db


def _path(cache_dir: Path, expressions: list[bytes], flags: list[int]) -> Path:
    h = hashlib.sha256(_FORMAT)
    h.update(str(getattr(hyperscan, "__version__", "")).encode())
    h.update(_MODE.to_bytes(4, "big"))
    for expr, flag in zip(expressions, flags, strict=True):
        h.update(len(expr).to_bytes(4, "big") + expr + flag.to_bytes(4, "big"))
    return cache_dir / "hyperscan" / f"{h.hexdigest()}.db"


def _trusted(path: Path) -> bool:
    """Owned by this user, in a directory owned by this user, neither writable by others."""
    uid = os.getuid()
    for st in (path.parent.stat(), path.stat()):
        if st.st_uid != uid or st.st_mode & 0o022:
            return False
    return True


def _load(path: Path) -> hyperscan.Database | None:
    try:
        if not _trusted(path):
            return None
        data = path.read_bytes()
        digest, blob = data[:_DIGEST], data[_DIGEST:]
        if hashlib.sha256(blob).digest() != digest:
            return None
        db = hyperscan.loadb(blob, mode=_MODE)
        db.scratch = hyperscan.Scratch(db)
        return db
    except (OSError, hyperscan.error, ValueError, TypeError):
        return None


def _store(path: Path, blob: bytes) -> None:
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(hashlib.sha256(blob).digest() + blob)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        pass  # a read-only or full home: the next scan compiles again
