"""Python bytecode next to its source: a layer's up-to-date ``__pycache__/*.pyc`` is not read.

A ``.pyc`` holds the constants of the ``.py`` it was compiled from. When that source is in the
same layer and the ``.pyc`` header records the source's exact size and modification time (the
check Python itself makes before it uses a ``.pyc``), the strings step would only find again what
the scan of the ``.py`` saw, and on a Python tree it costs more than the rest of the scan. Any
other ``.pyc`` (no source in the layer, a different size or mtime, hash-based, a legacy
``name.pyc`` beside its source) is scanned as before.

Only layers read from an archive on disk defer their ``.pyc`` files to the end of the layer
(``Deferred``); streamed layers (compressed, from a registry) scan every ``.pyc`` in order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

PYC_HEADER = 16  # magic, flags, source mtime, source size (PEP 552, flags 0)
_TAR_BLOCK = 512


def source_of(path: str) -> str | None:
    """``a/b.py`` for ``a/__pycache__/b.cpython-311.pyc`` (or ``b.cpython-311.opt-1.pyc``)."""
    folder, _, base = path.rpartition("/")
    if not base.endswith(".pyc") or not (
        folder == "__pycache__" or folder.endswith("/__pycache__")
    ):
        return None
    stem = base.split(".", 1)[0]
    return f"{folder[: -len('__pycache__')]}{stem}.py"


def compiled_from(header: bytes, size: int, mtime: int) -> bool:
    """True if a ``.pyc`` header says it was compiled from a source of this size and mtime."""
    if len(header) < PYC_HEADER or header[2:4] != b"\r\n" or header[4:8] != b"\0\0\0\0":
        return False  # not a .pyc, or hash-based (the hash would need the source read)
    return (
        int.from_bytes(header[8:12], "little") == mtime & 0xFFFFFFFF
        and int.from_bytes(header[12:16], "little") == size & 0xFFFFFFFF
    )


def _tar_mtime(header: bytes) -> int | None:
    field = header[136:148].split(b"\0", 1)[0].strip()
    try:
        return int(field, 8) if field else None
    except ValueError:
        return None  # base-256 or garbage: not compared, the .pyc is scanned


class Deferred:
    """A layer's ``__pycache__`` files, held back until every source of the layer is known."""

    def __init__(self) -> None:
        self._sources: dict[str, tuple[int, int]] = {}  # .py path -> (data offset, size)
        self._held: list[tuple[str, int, int, str]] = []  # (.pyc path, offset, size, source)

    def hold(self, path: str, offset: int, size: int) -> bool:
        """Note a regular file of the layer; True if it is a ``.pyc`` held for ``release``."""
        if path.endswith(".py"):
            self._sources[path] = (offset, size)
            return False
        if not path.endswith(".pyc"):
            return False
        source = source_of(path)
        if source is None:
            return False
        self._held.append((path, offset, size, source))
        return True

    def release(self, read: Callable[[int, int], bytes]) -> Iterator[tuple[str, int, int]]:
        """The held ``.pyc`` files to scan, as (path, offset, size), in layer order.

        ``read(offset, n)`` reads the layer's file; a source's mtime comes from its own tar
        header, the 512 bytes just before its data.
        """
        for path, offset, size, source in self._held:
            known = self._sources.get(source)
            if known is not None and size >= PYC_HEADER and known[0] >= _TAR_BLOCK:
                src_offset, src_size = known
                mtime = _tar_mtime(read(src_offset - _TAR_BLOCK, _TAR_BLOCK))
                if mtime is not None and compiled_from(read(offset, PYC_HEADER), src_size, mtime):
                    continue
            yield path, offset, size
        self._held.clear()
