"""Orchestration: sources → detectors → filters → findings, then allowlist and baseline.

Synchronous and CPU-bound; async callers (the API) run it with ``asyncio.to_thread``.
"""

from __future__ import annotations

import bisect
import fnmatch
import gc
import json
import tomllib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING

from vaultside.errors import InvalidRequestError
from vaultside.scan.base import (
    BUNDLE_SEP,
    Candidate,
    Chunk,
    Detector,
    Filter,
    Finding,
    Measured,
    ScanStats,
    Source,
    Splittable,
)
from vaultside.scan.detectors.known import KnownValueIndex
from vaultside.scan.detectors.rules import Rule, RuleDetector, default_rules
from vaultside.scan.filters import default_filters
from vaultside.scan.workers import Workers

if TYPE_CHECKING:
    pass

Progress = Callable[[ScanStats], None]


@dataclass(frozen=True, slots=True)
class Allowlist:
    """Accepted findings: by rule id, by path glob, or by baseline fingerprint."""

    rules: frozenset[str] = frozenset()
    paths: tuple[str, ...] = ()
    fingerprints: frozenset[str] = frozenset()

    def allows(self, f: Finding) -> bool:
        """True if ``f`` was accepted."""
        if f.rule_id in self.rules or f.fingerprint in self.fingerprints:
            return True
        p = "!".join((f.location.path, *f.location.nested))
        return any(fnmatch.fnmatchcase(p, g) for g in self.paths)

    @classmethod
    def load(cls, path: Path) -> Allowlist:
        """From TOML: ``rules = [...]``, ``paths = [globs]``, ``fingerprints = [...]``."""
        try:
            doc = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise InvalidRequestError(f"cannot read allowlist {path}: {exc}") from exc
        return cls(
            frozenset(map(str, doc.get("rules", []))),
            tuple(map(str, doc.get("paths", []))),
            frozenset(map(str, doc.get("fingerprints", []))),
        )


def load_baseline(path: Path) -> frozenset[str]:
    """Fingerprints accepted in a baseline file written by ``write_baseline``."""
    try:
        doc = json.loads(path.read_text())
        return frozenset(str(e["fingerprint"]) for e in doc["findings"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidRequestError(f"cannot read baseline {path}: {exc}") from exc


def write_baseline(path: Path, findings: Sequence[Finding]) -> None:
    """Write accepted findings' fingerprints (no values, no line numbers)."""
    # SECURITY: only fingerprints, rule ids and locations; never a secret value.
    doc = {
        "version": 1,
        "findings": [
            {
                "fingerprint": f.fingerprint,
                "rule_id": f.rule_id,
                "target": f.location.target,
                "path": "!".join((f.location.path, *f.location.nested)),
            }
            for f in sorted(findings, key=lambda f: f.fingerprint)
        ],
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")


@dataclass
class ScanResult:
    """Reported findings, how many were suppressed, and what was covered."""

    findings: list[Finding]
    suppressed: int
    stats: ScanStats
    targets: list[str] = field(default_factory=list)


class Scanner:
    """Runs detectors over every chunk of every source and filters the candidates."""

    def __init__(
        self,
        *,
        rules: list[Rule] | None = None,
        known: KnownValueIndex | None = None,
        filters: Sequence[Filter] | None = None,
        allowlist: Allowlist | None = None,
        baseline: frozenset[str] = frozenset(),
        cache_dir: Path | None = None,
    ) -> None:
        """``cache_dir``: where compiled keyword databases are kept between runs (the CLI's)."""
        self.detectors: list[Detector] = [
            RuleDetector(rules if rules is not None else default_rules(), cache_dir=cache_dir)
        ]
        if known is not None and len(known):
            self.detectors.append(known.matcher())
        self.filters = list(filters) if filters is not None else list(default_filters())
        self.allowlist = allowlist or Allowlist()
        self.baseline = baseline

    def _bundle_findings(self, chunk: Chunk) -> list[Finding]:
        """A bundle of small files: detect once over all, then per file only where it found.

        Detection on a file alone never finds what detection on the bundle misses (files
        start on a line of their own and ``BUNDLE_SEP`` ends them), so a file without a
        candidate in the bundle has none; files with one are scanned alone, with their own
        location, so filters, line numbers and cross-file matches are as for any single file.
        A candidate that runs across files (a pattern matching NUL and newlines) marks every
        file it touches, so it cannot hide a match inside the next file; a file with a
        keyword of a multiline rule is always rescanned. Every detector must see what the
        single-file scan sees: a decoding step belongs in a detector.
        """
        data, parts = chunk.data, chunk.parts
        starts = [p[0] for p in parts]
        hot: set[int] = set()
        for det in self.detectors:
            if isinstance(det, RuleDetector):
                # A multiline rule's window (16 KiB) can run from one file over the next one's
                # keyword, and stop before that file's match ends: a file holding such a
                # keyword is scanned alone whatever the bundle found.
                cands, marks = det.detect_marked(data)
                hot.update(bisect.bisect_right(starts, m) - 1 for m in marks)
            else:
                cands = list(det.detect(data))
            for cand in cands:
                first = bisect.bisect_right(starts, cand.start) - 1
                last = bisect.bisect_right(starts, max(cand.start, cand.end - 1)) - 1
                hot.update(range(max(first, 0), last + 1))
        out: list[Finding] = []
        for i in sorted(hot):
            end = starts[i + 1] if i + 1 < len(parts) else len(data)
            part = Chunk(data[starts[i] : end - len(BUNDLE_SEP)], parts[i][1])
            out.extend(self._chunk_findings(part))
        return out

    def _chunk_findings(self, chunk: Chunk) -> list[Finding]:
        if chunk.parts:
            return self._bundle_findings(chunk)
        data = chunk.data
        by_span: dict[int, tuple[Candidate, int]] = {}
        for det in self.detectors:
            for cand in det.detect(data):
                # SECURITY: managed values are reported even if a filter would call them noise.
                if cand.known is None and any(
                    flt.rejects(cand, data, chunk.location) for flt in self.filters
                ):
                    continue
                prev = by_span.get(cand.start)
                rank = 2 if cand.known is not None else (0 if cand.generic else 1)
                if prev is None or rank > prev[1]:
                    by_span[cand.start] = (cand, rank)
        out: list[Finding] = []
        for start, (cand, _rank) in sorted(by_span.items()):
            line = chunk.first_line + data.count(b"\n", 0, start) if chunk.first_line else None
            loc = replace(chunk.location, line=line)
            out.append(
                Finding(
                    rule_id=cand.rule_id,
                    description=cand.description,
                    severity=cand.severity,
                    location=loc,
                    secret=cand.secret,
                    known=cand.known,
                )
            )
        return out

    def _parallel(
        self, parts: Iterator[Source], jobs: int, stats: ScanStats, progress: Progress | None
    ) -> list[Finding]:
        """Scan ``parts`` in ``jobs`` forked workers while ``parts`` is still being produced.

        The workers start first and each slice goes to them as soon as the source has cut it
        (the source indexes the rest meanwhile): indexing and scanning overlap.
        """
        global _WORKER
        _WORKER = self  # inherited through fork; each slice is sent (pickled) as it is cut
        found: list[Finding] = []
        # Objects that exist now are never collected in the workers: the collector then does
        # not write to (and so copy) every page of the parent's heap in each of them.
        gc.freeze()
        try:
            for part_found, part_stats in Workers(jobs, _scan_part).run(parts):
                found.extend(part_found)
                stats.merge(part_stats)
                if progress is not None:
                    progress(stats)
        finally:
            gc.unfreeze()
            _WORKER = None
        return found

    def scan(
        self, sources: Sequence[Source], *, progress: Progress | None = None, jobs: int = 1
    ) -> ScanResult:
        """Scan every source; ``VaultsideError`` subclasses say why a source could not be read.

        ``jobs > 1`` scans splittable sources (archives on disk) in that many forked worker
        processes; only use it from a single-threaded process (the CLI).
        """
        stats = ScanStats()
        findings: list[Finding] = []
        hints = [src.size_hint() if isinstance(src, Measured) else None for src in sources]
        if any(h is not None for h in hints):
            stats.bytes_total = sum(h or 0 for h in hints)  # overall, across every source
        for src, hint in zip(sources, hints, strict=True):
            read_before = stats.bytes_read
            found: list[Finding] = []
            if jobs > 1 and isinstance(src, Splittable):
                # more slices than workers: slices differ in cost (nested archives, binaries),
                # and small ones at the end keep every worker busy to the last
                parts = iter(src.split(jobs * 8))
                first = next(parts, None)
                if first is not None:
                    found.extend(self._parallel(chain((first,), parts), jobs, stats, progress))
            for chunk in src.chunks(stats):
                found.extend(self._chunk_findings(chunk))
                if progress is not None:
                    progress(stats)
            findings.extend(src.finalize(found))
            if hint is not None:  # headers and padding a source did not count
                stats.bytes_read = read_before + hint
                if progress is not None:
                    progress(stats)
        findings = _redact_created_by(_dedupe(f.with_fingerprint() for f in findings))
        kept = [
            f
            for f in findings
            if f.fingerprint not in self.baseline and not self.allowlist.allows(f)
        ]
        kept.sort(
            key=lambda f: (-f.severity, f.location.target, f.location.path, f.location.line or 0)
        )
        return ScanResult(kept, len(findings) - len(kept), stats)


def _scan_part(part: Source) -> tuple[list[Finding], ScanStats]:
    """Worker: the findings of one slice, with the scanner inherited through fork."""
    if _WORKER is None:
        raise RuntimeError("scan worker started without a scanner")
    stats = ScanStats()
    found = [f for chunk in part.chunks(stats) for f in _WORKER._chunk_findings(chunk)]
    return found, stats


_WORKER: Scanner | None = None


def _redact_created_by(findings: list[Finding]) -> list[Finding]:
    """Replace every found value inside history ``created_by`` strings by its redacted form.

    # SECURITY: ``ENV X=...``, ``LABEL`` and ``ARG`` instructions carry the very values that
    # were found; attribution must not print them next to a redacted finding.
    """
    values = sorted(
        {f.secret for f in findings if f.secret is not None and len(f.secret) >= 4},
        key=len,
        reverse=True,
    )
    if not values:
        return findings
    out: list[Finding] = []
    for f in findings:
        cb = f.location.created_by
        if cb is not None:
            for s in values:
                if s.reveal() in cb:
                    cb = cb.replace(s.reveal(), s.redacted())
            f = replace(f, location=replace(f.location, created_by=cb))
        out.append(f)
    return out


def _dedupe(findings: Iterable[Finding]) -> list[Finding]:
    seen: set[tuple[str, int | None, str | None]] = set()
    out: list[Finding] = []
    for f in findings:
        key = (f.fingerprint, f.location.line, f.location.layer)
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out
