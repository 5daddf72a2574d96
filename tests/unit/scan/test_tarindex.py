"""The pread tar reader agrees with tarfile on ustar, GNU and PAX archives and rejects damage."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from vaultside.scan.sources.tarindex import Section, TarFormatError, entries

LONG = "very/" * 30 + "long-name.txt"


def make(path: Path, fmt: int) -> None:
    with tarfile.open(path, "w", format=fmt) as tf:
        for name, data in (("a.txt", b"alpha\n"), (LONG, b"x" * 1000), ("d/empty", b"")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        d = tarfile.TarInfo("dir")
        d.type = tarfile.DIRTYPE
        tf.addfile(d)
        link = tarfile.TarInfo("link")
        link.type = tarfile.SYMTYPE
        link.linkname = "a.txt"
        tf.addfile(link)


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_entries_match_tarfile(tmp_path: Path, fmt: int) -> None:
    path = tmp_path / "t.tar"
    make(path, fmt)  # ustar stores the long name split into prefix + name
    with tarfile.open(path) as tf:
        want = [(m.name, m.offset_data, m.size, m.isfile()) for m in tf.getmembers()]
    with path.open("rb") as f:
        got = [(e.name.rstrip("/"), e.offset, e.size if e.is_file else 0, e.is_file)
               for e in entries(f.fileno(), 0, path.stat().st_size)]  # fmt: skip
        want = [(n, o, s if isf else 0, isf) for n, o, s, isf in want]
        assert got == want
        long = next(e for e in entries(f.fileno(), 0, path.stat().st_size) if e.name == LONG)
        assert Section(f.fileno(), long.offset, long.size).read() == b"x" * 1000


def test_bad_checksum_and_truncation_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "t.tar"
    make(path, tarfile.PAX_FORMAT)
    data = bytearray(path.read_bytes())
    bad = tmp_path / "bad.tar"
    data[10] ^= 0xFF
    bad.write_bytes(data)
    with bad.open("rb") as f, pytest.raises(TarFormatError, match="checksum"):
        list(entries(f.fileno(), 0, len(data)))
    cut = tmp_path / "cut.tar"
    cut.write_bytes(path.read_bytes()[:1536])
    with cut.open("rb") as f, pytest.raises(TarFormatError):
        list(entries(f.fileno(), 0, 1536))
