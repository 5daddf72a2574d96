"""A layer's up-to-date ``__pycache__/*.pyc`` is not read; any other ``.pyc`` still is."""

from __future__ import annotations

import importlib.util
import marshal
import random
import struct
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.unit.scan import imagegen
from tests.unit.scan.credgen import github_token
from tests.unit.scan.imagegen import ImageSpec, docker_save
from vaultside.scan.base import ScanStats
from vaultside.scan.scanner import Scanner
from vaultside.scan.sources.archive import ImageArchiveSource
from vaultside.scan.sources.pycache import compiled_from, source_of

MTIME = 1_700_000_000  # every tar entry's mtime in these images


def pyc(source: str, *, mtime: int = MTIME, flags: int = 0) -> bytes:
    """``source`` compiled, with a header naming a source of this mtime and size."""
    code = compile(source, "m.py", "exec")
    size = len(source.encode())
    return (
        importlib.util.MAGIC_NUMBER + struct.pack("<III", flags, mtime, size) + marshal.dumps(code)
    )


def test_source_of_a_pycache_file() -> None:
    assert source_of("usr/lib/a/__pycache__/b.cpython-311.pyc") == "usr/lib/a/b.py"
    assert source_of("__pycache__/b.cpython-311.opt-1.pyc") == "b.py"
    assert source_of("usr/lib/a/b.pyc") is None  # legacy, beside its source: scanned
    assert source_of("x__pycache__/b.cpython-311.pyc") is None
    assert source_of("usr/lib/a/__pycache__/b.py") is None


def test_compiled_from_reads_what_python_checks() -> None:
    head = pyc("X = 1\n")[:16]
    assert compiled_from(head, 6, MTIME)
    assert not compiled_from(head, 7, MTIME) and not compiled_from(head, 6, MTIME + 1)
    assert not compiled_from(pyc("X = 1\n", flags=1)[:16], 6, MTIME)  # hash-based
    assert not compiled_from(b"not a pyc header", 6, MTIME)


@pytest.mark.parametrize("jobs", [1, 3])
def test_only_a_fresh_pyc_beside_its_source_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: int
) -> None:
    monkeypatch.setattr(imagegen, "time", SimpleNamespace(time=lambda: float(MTIME)))
    rng = random.Random()
    fresh, stale, orphan, hashed = (github_token(rng) for _ in range(4))
    fresh_src = f'TOKEN = "{fresh}"\n'
    stale_src = 'TOKEN = "rotated"\n'
    hashed_src = "X = 1\n"
    files: dict[str, bytes | None] = {
        "app/settings.py": fresh_src.encode(),
        "app/__pycache__/settings.cpython-311.pyc": pyc(fresh_src),
        # compiled before the source was edited: other mtime, and the old value inside
        "app/old.py": stale_src.encode(),
        "app/__pycache__/old.cpython-311.pyc": pyc(f'TOKEN = "{stale}"\n', mtime=MTIME - 60),
        "lib/__pycache__/orphan.cpython-311.pyc": pyc(f'TOKEN = "{orphan}"\n'),
        "lib/h.py": hashed_src.encode(),
        "lib/__pycache__/h.cpython-311.pyc": pyc(f'X = 1\nT = "{hashed}"\n', flags=1),
    }
    for i in range(300):  # enough files for several worker slices
        files[f"pad/f{i:03d}.py"] = f"VALUE_{i} = {i}\n".encode() * 200
    path = tmp_path / "image.tar"
    docker_save(ImageSpec([("COPY . /", files)]), path)
    result = Scanner().scan([ImageArchiveSource(path)], jobs=jobs)
    where = {f.secret.reveal(): f.location.path for f in result.findings if f.secret}
    assert where[fresh] == "app/settings.py"  # found once, in the source
    assert [
        f for f in result.findings if f.location.path.endswith("settings.cpython-311.pyc")
    ] == []
    assert where[stale] == "app/__pycache__/old.cpython-311.pyc"
    assert where[orphan] == "lib/__pycache__/orphan.cpython-311.pyc"
    assert where[hashed] == "lib/__pycache__/h.cpython-311.pyc"
    assert result.stats.files == len(files) - 1  # the one fresh .pyc was not read


def test_sequential_chunks_defer_pyc_to_the_end_of_their_layer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imagegen, "time", SimpleNamespace(time=lambda: float(MTIME)))
    src = "A = 1\n"
    files: dict[str, bytes | None] = {
        "a/__pycache__/m.cpython-311.pyc": pyc(src),  # before its source in the layer
        "a/m.py": src.encode(),
        "a/__pycache__/n.cpython-311.pyc": pyc("B = 2\n"),
    }
    path = tmp_path / "image.tar"
    docker_save(ImageSpec([("COPY . /", files)]), path)
    stats = ScanStats()
    chunks = list(ImageArchiveSource(path).chunks(stats))
    paths = [c.location.path for c in chunks]
    assert "a/__pycache__/m.cpython-311.pyc" not in paths
    assert "a/__pycache__/n.cpython-311.pyc" in paths
    assert stats.files == 2
