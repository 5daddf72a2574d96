"""Strings of binary formats known to embed string constants, as text the detectors can read.

Binaries are skipped, except a small allow-list recognised by magic bytes:

- Python bytecode (``.pyc``: a 2-byte magic number followed by ``\\r\\n``): printable ASCII
  runs, cut where marshal's string objects begin and end (a length byte may be printable);
- Java class files (``0xCAFEBABE`` with a class-file major version): the constant pool's
  ``CONSTANT_Utf8`` entries, decoded from modified UTF-8 (printable runs if the pool is
  malformed);
- SQLite databases (``SQLite format 3\\0``): every table's rows as ``column = 'value'`` lines
  (so a keyword rule sees the column name next to the value; a text value that follows a
  name-like one in the same row is also written ``name = 'value'``, for key/value tables),
  read through the stdlib ``sqlite3`` from memory with a step budget; printable runs if the
  database cannot be read.

*Printable runs* are what ``strings -n 8`` prints, UTF-8 sequences included: one run a line.
The text is not the file's text, so its findings carry no line number (``NO_LINES``). Files
larger than ``MAX_STRINGS_FILE`` stay skipped: the step is bounded and cheap.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator

MAX_STRINGS_FILE = 16 * 1024 * 1024
MAX_STRINGS_OUT = 8 * 1024 * 1024  # bytes of extracted text per file
_MIN_RUN = 8
# printable ASCII, tab, and the bytes of UTF-8 sequences (a byte class: C speed, ~100 MB/s)
_RUN = re.compile(rb"[\t\x20-\x7e\x80-\xf4]{8,}")
_ASCII_RUN = re.compile(rb"[\t\x20-\x7e]{8,}")  # in a .pyc: marshal's framing bytes stay out
_SQLITE_MAGIC = b"SQLite format 3\0"
_SQLITE_STEPS = 5_000_000  # virtual-machine steps per database before the read is cut
_SQLITE_ROWS = 200_000
_NAME = re.compile(r"[A-Za-z_][\w.-]{2,63}")


def strings_kind(head: bytes) -> str | None:
    """``pyc``, ``class`` or ``sqlite`` from a binary file's first bytes, else None."""
    if head.startswith(_SQLITE_MAGIC):
        return "sqlite"
    if head[2:4] == b"\r\n" and len(head) >= 16:
        magic = int.from_bytes(head[:2], "little")
        if 3000 <= magic < 4000 or magic == 62211:  # CPython 3.x, 2.7
            return "pyc"
    if head.startswith(b"\xca\xfe\xba\xbe") and len(head) >= 8:
        major = int.from_bytes(head[6:8], "big")
        if 45 <= major < 100:  # a Mach-O fat binary has a small arch count here
            return "class"
    return None


def printable_runs(data: bytes) -> bytes:
    """Runs of at least 8 printable characters (ASCII or UTF-8), one a line."""
    out = bytearray()
    for m in _RUN.finditer(data):
        out += m.group()
        out += b"\n"
        if len(out) >= MAX_STRINGS_OUT:
            break
    return bytes(out)


def extract(kind: str, data: bytes) -> bytes:
    """The text to scan for a file of ``kind`` (see the module contract)."""
    if kind == "class":
        try:
            return b"\n".join(_class_utf8(data))[:MAX_STRINGS_OUT] + b"\n"
        except (struct.error, IndexError, ValueError):
            pass
    elif kind == "sqlite":
        import sqlite3  # here: ~2 ms of every scan's start-up, for the few SQLite files

        try:
            return _sqlite_rows(data)
        except (sqlite3.Error, OverflowError, ValueError, MemoryError):
            pass
    if kind == "pyc":
        return b"\n".join(_pyc_strings(data))[:MAX_STRINGS_OUT] + b"\n"
    return printable_runs(data)


_SHORT = frozenset(b"zZ")  # marshal's short ASCII strings: type, 1-byte length, bytes
_LONG = frozenset(b"aAstu")  # type, 4-byte little-endian length, bytes


def _pyc_strings(data: bytes) -> Iterator[bytes]:
    """Printable runs cut at marshal's string objects: a run such as ``(ghp_...N)`` holds a
    length byte before and the next object's type code after the string; runs that are not
    strings (or not only) are kept whole."""
    for m in _ASCII_RUN.finditer(data):
        s, e = m.span()
        start, n = _string_at(data, s)
        if start < 0 or start + n > e:
            yield m.group()
            continue
        while True:
            if n >= _MIN_RUN:
                yield data[start : start + n]
            p = start + n
            if p + 2 > e or data[p] & 0x7F not in _SHORT:
                if e - p >= _MIN_RUN + 2:
                    yield data[p:e]  # not a string object: keep what is left
                break
            start, n = p + 2, data[p + 1]
            if start + n > e:
                yield data[p:e]
                break


def _string_at(data: bytes, s: int) -> tuple[int, int]:
    """(start, length) of the marshal string a printable run at ``s`` begins, or (-1, 0)."""
    if s >= 2 and data[s - 2] & 0x7F in _SHORT:
        return s, data[s - 1]  # non-printable length byte
    if s >= 1 and data[s - 1] & 0x7F in _SHORT and s + 1 < len(data):
        return s + 1, data[s]  # type code with FLAG_REF, printable length byte
    if s >= 5 and data[s - 5] & 0x7F in _LONG:
        return s, int.from_bytes(data[s - 4 : s], "little")
    if data[s] in _SHORT and s + 2 < len(data):
        return s + 2, data[s + 1]
    return -1, 0


def _class_utf8(data: bytes) -> Iterator[bytes]:
    """The ``CONSTANT_Utf8`` strings of a class file's constant pool (JVMS §4.4)."""
    count = struct.unpack_from(">H", data, 8)[0]
    pos, i = 10, 1
    sizes = {3: 4, 4: 4, 5: 8, 6: 8, 7: 2, 8: 2, 9: 4, 10: 4, 11: 4, 12: 4, 15: 3, 16: 2}
    sizes.update({17: 4, 18: 4, 19: 2, 20: 2})
    while i < count:
        tag = data[pos]
        if tag == 1:
            (n,) = struct.unpack_from(">H", data, pos + 1)
            raw = data[pos + 3 : pos + 3 + n]
            if len(raw) < n:
                raise ValueError("truncated constant pool")
            if n >= 4:
                yield _modified_utf8(raw)
            pos += 3 + n
        elif tag in sizes:
            pos += 1 + sizes[tag]
        else:
            raise ValueError(f"unknown constant pool tag {tag}")
        i += 2 if tag in (5, 6) else 1  # longs and doubles take two slots


def _modified_utf8(raw: bytes) -> bytes:
    """Java's modified UTF-8 (NUL as C0 80, surrogate pairs) as UTF-8."""
    text = raw.replace(b"\xc0\x80", b"\x00").decode("utf-8", "surrogatepass")
    text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text.encode("utf-8", "replace").replace(b"\x00", b" ")


def _sqlite_rows(data: bytes) -> bytes:
    """Every ordinary table's text values as ``column = 'value'`` lines."""
    import sqlite3

    con = sqlite3.connect(":memory:")
    con.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_STRINGS_FILE)  # no value bigger than the file
    try:
        con.deserialize(data)
        # SECURITY: the database is untrusted: no schema-defined functions with side effects
        # (views, triggers, generated columns), no writes, no value over the file's size cap, a
        # step budget.
        con.execute("PRAGMA trusted_schema = OFF")
        con.execute("PRAGMA query_only = ON")
        steps = [0]

        def budget() -> int:
            steps[0] += 1
            return 1 if steps[0] > _SQLITE_STEPS // 1000 else 0

        con.set_progress_handler(budget, 1000)
        tables = [
            str(name)
            for (name,) in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND sql NOT LIKE "
                "'CREATE VIRTUAL%'"
            )
        ]
        out: list[bytes] = []
        size = rows = 0
        for table in tables:
            quoted = '"' + table.replace('"', '""') + '"'
            cur = con.execute(f"SELECT * FROM {quoted}")  # noqa: S608 - a quoted identifier
            cols = [d[0] for d in cur.description]
            for row in cur:
                rows += 1
                prev = ""
                for col, value in zip(cols, row, strict=False):
                    if isinstance(value, bytes):
                        value = printable_runs(value).decode("utf-8", "replace").strip()
                    if not isinstance(value, str) or not value:
                        prev = ""
                        continue
                    line = f"{col} = '{value}'"
                    if _NAME.fullmatch(prev):  # a key/value table: (name, value) rows
                        line += f"\n{prev} = '{value}'"
                    out.append(line.encode("utf-8", "replace"))
                    size += len(out[-1]) + 1
                    prev = value
                if size >= MAX_STRINGS_OUT or rows >= _SQLITE_ROWS:
                    return b"\n".join(out) + b"\n"
        return b"\n".join(out) + b"\n" if out else b""
    finally:
        con.close()
