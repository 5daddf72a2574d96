"""Scoring a tool's findings against the corpus's plants: recall and precision overall,
per source kind and per type."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.unit.scan.corpus_formats import Plant


@dataclass(frozen=True)
class Reported:
    """One tool finding: a path (or pseudo path), a line, the value (or None if hashed)."""

    path: str
    line: int | None
    value: str | None
    sha1: str | None = None  # detect-secrets reports only SHA-1 hashes of values


def _forms(p: Plant) -> tuple[str, ...]:
    return (p.value, *p.accept)


def matches(rep: Reported, p: Plant) -> bool:
    """The finding reports this plant: by value (either contains the other, >= 8 chars) or
    by its file path and line."""
    if rep.sha1 is not None:
        return any(hashlib.sha1(f.encode()).hexdigest() == rep.sha1 for f in _forms(p)) or (
            p.line is not None and rep.path.endswith(p.path) and rep.line == p.line
        )
    if rep.value is not None:
        for f in _forms(p):
            if len(rep.value) >= 8 and (rep.value in f or f in rep.value):
                return True
    if p.line is not None and rep.line is not None and p.path and rep.path.endswith(p.path):
        return p.line <= rep.line <= p.line + p.value.count("\n")
    return False


@dataclass
class Score:
    """Recall and precision overall, per source kind and per type."""

    found: int
    plants: int
    tp: int
    fp: int
    by_kind: dict[str, tuple[int, int]]  # kind -> (found, planted)
    by_type: dict[str, tuple[int, int]]
    fp_examples: list[str]
    tp_by_kind: dict[str, int] = field(default_factory=dict)
    fp_by_kind: dict[str, int] = field(default_factory=dict)

    def kind_precision(self, kind: str) -> float:
        """True findings of ``kind`` over all findings attributed to it."""
        tp, fp = self.tp_by_kind.get(kind, 0), self.fp_by_kind.get(kind, 0)
        return tp / (tp + fp) if tp + fp else 1.0

    @property
    def recall(self) -> float:
        return self.found / self.plants if self.plants else 1.0

    @property
    def precision(self) -> float:
        n = self.tp + self.fp
        return self.tp / n if n else 1.0


def kind_of_path(path: str) -> str:
    """The source kind a finding's (pseudo) path belongs to, for false positives."""
    for prefix, kind in (
        ("config/Env", "env"), ("config/Labels", "label"), ("history/", "history"),
        ("container/Env", "container-env"), ("container/Labels", "container-label"),
        ("container/Cmd", "container-args"), ("tmp/build/", "deleted-file"),
        ("opt/lib/", "nested-archive"), ("srv/decoys/", "decoy"), ("usr/", "os-noise"),
        ("opt/venv/", "os-noise"),
    ):  # fmt: skip
        if path.startswith(prefix) or f"/{prefix}" in path:
            return kind
    return "layer-file"


def score(
    reports: list[Reported],
    plants: list[Plant],
    classify: Callable[[str], str] = kind_of_path,
) -> Score:
    """Match findings to plants; a finding that matches none is a false positive."""
    hit = [False] * len(plants)
    tp = fp = 0
    fps: list[str] = []
    tp_by_kind: dict[str, int] = {}
    fp_by_kind: dict[str, int] = {}
    for rep in reports:
        first: Plant | None = None
        for i, p in enumerate(plants):
            if matches(rep, p):
                hit[i] = True
                first = first or p
        if first is not None:
            tp += 1
            tp_by_kind[first.kind] = tp_by_kind.get(first.kind, 0) + 1
        else:
            fp += 1
            k = classify(rep.path)
            fp_by_kind[k] = fp_by_kind.get(k, 0) + 1
            fps.append(f"{rep.path}:{rep.line}")
    by_kind: dict[str, tuple[int, int]] = {}
    by_type: dict[str, tuple[int, int]] = {}
    for p, h in zip(plants, hit, strict=True):
        for key, d in ((p.kind, by_kind), (p.type, by_type)):
            f, n = d.get(key, (0, 0))
            d[key] = (f + h, n + 1)
    return Score(sum(hit), len(plants), tp, fp, by_kind, by_type, fps, tp_by_kind, fp_by_kind)
