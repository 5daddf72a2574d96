"""Credentials inside binary formats that embed strings (``binstrings``) and in ``.xz`` /
``.bz2`` files. Values are generated here; each test failed before the step existed."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import random
import sqlite3
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.unit.scan.corpus_formats import class_file, pyc_file, sqlite_file
from tests.unit.scan.credgen import AN, github_token, rnd
from vaultside.scan.base import Finding
from vaultside.scan.scanner import Scanner
from vaultside.scan.sources.binstrings import extract, printable_runs, strings_kind
from vaultside.scan.sources.content import Limits
from vaultside.scan.sources.path import PathSource

RNG = random.Random()


def scan(root: Path, files: dict[str, bytes]) -> list[Finding]:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return Scanner().scan([PathSource(root)]).findings


def values(found: list[Finding], path: str) -> set[tuple[str, int | None]]:
    return {
        (f.secret.reveal(), f.location.line)
        for f in found
        if f.location.path == path and f.secret is not None
    }


def test_strings_in_python_bytecode_are_scanned(tmp_path: Path) -> None:
    tok = github_token(RNG)
    data = pyc_file(f'GITHUB = "{tok}"\nDEBUG = False\n')
    assert strings_kind(data[:16]) == "pyc"
    found = scan(tmp_path, {"app/__pycache__/settings.cpython-311.pyc": data})
    assert (tok, None) in values(found, "app/__pycache__/settings.cpython-311.pyc")


def test_java_class_constant_pool_strings_are_scanned(tmp_path: Path) -> None:
    tok = github_token(RNG)
    # a NUL (modified UTF-8 C0 80) and a supplementary character around the token
    data = class_file(["Hello\0world", f"\U0001f511 {tok}", "getConnection"])
    assert strings_kind(data[:16]) == "class"
    found = scan(tmp_path, {"opt/app/classes/com/acme/Config.class": data})
    assert (tok, None) in values(found, "opt/app/classes/com/acme/Config.class")


def test_sqlite_rows_are_scanned_with_their_column_names(tmp_path: Path) -> None:
    tok, pw, kv = github_token(RNG), rnd(RNG, AN, 22), rnd(RNG, AN, 24)
    data = sqlite_file(
        {
            "tokens": (["id", "token"], [(1, tok)]),
            "users": (["name", "password"], [("deploy", pw)]),
            "settings": (["key", "value"], [("smtp_password", kv), ("theme", "dark")]),
        }
    )
    assert strings_kind(data[:16]) == "sqlite"
    found = values(scan(tmp_path, {"var/lib/app/app.db": data}), "var/lib/app/app.db")
    assert {v for v, _ in found} >= {tok, pw, kv}
    assert {line for _, line in found} == {None}


def test_other_binaries_stay_skipped(tmp_path: Path) -> None:
    tok = github_token(RNG)
    data = b"\x7fELF\x02\x01\x01\0" + bytes(64) + f"GITHUB={tok}\n".encode()
    assert strings_kind(data[:16]) is None
    assert values(scan(tmp_path, {"usr/bin/tool": data}), "usr/bin/tool") == set()


def test_printable_runs_keep_utf8_and_drop_short_runs() -> None:
    data = b"\0\x01short\0" + "pässwörd-long-enough".encode() + b"\0\xff\xfe"
    assert printable_runs(data) == "pässwörd-long-enough\n".encode()


@pytest.mark.parametrize(("ext", "compress"), [(".xz", lzma.compress), (".bz2", bz2.compress)])
def test_xz_and_bzip2_files_are_decompressed(
    tmp_path: Path, ext: str, compress: Callable[[bytes], bytes]
) -> None:
    tok, pw = github_token(RNG), rnd(RNG, AN, 20)
    log = f"2026-01-01 INFO start\n2026-01-01 DEBUG password={pw} ok\nGH={tok}\n".encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("etc/app.env")
        info.size = len(log)
        tf.addfile(info, io.BytesIO(log))
    files = {
        f"var/log/app.log{ext}": compress(log),
        f"srv/bundle.tar{ext}": compress(buf.getvalue()),
    }
    found = scan(tmp_path, files)
    assert values(found, f"var/log/app.log{ext}") == {(pw, 2), (tok, 3)}
    nested = {
        (f.secret.reveal(), f.location.nested, f.location.line)
        for f in found
        if f.location.path == f"srv/bundle.tar{ext}" and f.secret is not None
    }
    assert nested == {(pw, ("etc/app.env",), 2), (tok, ("etc/app.env",), 3)}


@pytest.mark.parametrize("compress", [gzip.compress, lzma.compress, bz2.compress])
def test_a_decompression_bomb_is_cut_at_the_limit(
    tmp_path: Path, compress: Callable[[bytes], bytes]
) -> None:
    tok = github_token(RNG)
    data = compress(b"x" * (4 << 20) + f"\nGH={tok}\n".encode())
    (tmp_path / "bomb.log.z").write_bytes(data)
    limits = Limits(max_decompressed_bytes=1 << 20)
    result = Scanner().scan([PathSource(tmp_path, limits=limits)])
    assert result.findings == []
    assert any("decompresses to more than" in w for w in result.stats.warnings)
    assert result.stats.bytes_scanned <= 1 << 20


def test_a_hostile_sqlite_database_stays_bounded(tmp_path: Path) -> None:
    """Generated columns are evaluated on read: a huge value or a long loop stops early."""
    tok = github_token(RNG)
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE big (a, b GENERATED ALWAYS AS (zeroblob(900000000)))")
    con.execute("CREATE TABLE tok (t)")
    con.execute("INSERT INTO big (a) VALUES (1)")
    con.execute("INSERT INTO tok VALUES (?)", (tok,))
    con.commit()
    data = con.serialize()
    con.close()
    start = time.monotonic()
    found = values(scan(tmp_path, {"var/lib/evil.db": data}), "var/lib/evil.db")
    assert time.monotonic() - start < 5
    assert (tok, None) in found  # the printable runs of the file still hold it


def test_corrupt_files_of_known_formats_never_raise() -> None:
    """Truncated and random bodies behind each magic: printable runs at worst."""
    rng = random.Random(7)
    heads = [
        class_file(["abcdefgh" * 4])[:40],
        pyc_file("X = 1\n")[:20],
        sqlite_file({"t": (["a"], [("abcdefgh",)])})[:200],
    ]
    for head in heads:
        kind = strings_kind(head[:16])
        assert kind is not None
        for _ in range(50):
            body = head + rng.randbytes(rng.randrange(0, 5000))
            assert isinstance(extract(kind, body), bytes)
            cut = body[: rng.randrange(16, len(body) + 1)]
            assert isinstance(extract(kind, cut), bytes)
