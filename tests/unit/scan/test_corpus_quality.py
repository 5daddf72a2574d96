"""vaultside's recall and precision on a corpus generated now (``corpus.py``) stay >= 97%.

The corpus is the bench's (``bench/bench_scan_corpus.py``) at a smaller size and without a
Docker engine: the image as a ``docker save`` archive, the containers as inspect data.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import cast

from tests.unit.scan.corpus import KINDS, build_corpus, container_attrs, image_spec
from tests.unit.scan.corpus_score import Reported, score
from tests.unit.scan.imagegen import ImageSpec, docker_save
from vaultside.scan.base import Finding
from vaultside.scan.scanner import Scanner
from vaultside.scan.sources.archive import ImageArchiveSource
from vaultside.scan.sources.container import ContainerSource

STDLIB = Path("/usr/lib/python3.11")


class FakeEngine:
    """The part of a Docker client ``ContainerSource`` uses: ``containers.list``."""

    def __init__(self, attrs: list[dict[str, object]]) -> None:
        self.containers = self
        self._attrs = attrs

    def list(self, all: bool = False) -> list[SimpleNamespace]:
        return [SimpleNamespace(attrs=a) for a in self._attrs]


def stdlib_noise(limit: int = 4 << 20) -> dict[str, bytes]:
    """Real text from the Python stdlib (a few packages), as OS noise."""
    out: dict[str, bytes] = {}
    size = 0
    for pkg in ("json", "email", "http", "urllib", "logging", "ssl.py", "hmac.py", "secrets.py"):
        root = STDLIB / pkg
        for p in sorted(root.rglob("*.py")) if root.is_dir() else [root]:
            if p.is_file() and size < limit:
                data = p.read_bytes()
                out[f"usr/lib/python3.11/{p.relative_to(STDLIB)}"] = data
                size += len(data)
    return out


def reported(findings: list[Finding]) -> list[Reported]:
    return [
        Reported(
            "!".join((f.location.path, *f.location.nested)),
            f.location.line,
            f.secret.reveal() if f.secret is not None else None,
        )
        for f in findings
        if f.secret is not None
    ]


def test_recall_and_precision_on_a_generated_corpus(tmp_path: Path) -> None:
    spec = build_corpus(seed=29, per_type=3)
    assert len(spec.plants) >= 150
    assert len({p.type for p in spec.plants}) >= 40
    assert {p.kind for p in spec.plants} == set(KINDS)
    archive = tmp_path / "image.tar"
    docker_save(cast(ImageSpec, image_spec(spec, stdlib_noise())), archive)
    engine = FakeEngine(container_attrs(spec))
    sources = [ImageArchiveSource(archive), ContainerSource(engine, all_containers=True)]
    findings = Scanner().scan(sources).findings
    s = score(reported(findings), spec.plants)
    missed = [f"{t}: {f}/{n}" for t, (f, n) in s.by_type.items() if f < n]
    assert s.recall >= 0.97, (f"recall {s.recall:.3f}", missed)
    assert s.precision >= 0.97, (f"precision {s.precision:.3f}", s.fp_examples)
