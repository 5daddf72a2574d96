"""The scan seams: where bytes come from, what looks like a secret, what is noise, how to show it.

A ``Source`` yields ``Chunk``s (bytes plus where they came from); a ``Detector`` turns a
chunk's bytes into ``Candidate``s without I/O; a ``Filter`` drops false positives; the
scanner turns survivors into ``Finding``s, which a ``Reporter`` renders.

# SECURITY: a ``Secret`` never shows its value in ``repr``/``str``; only ``reveal()`` does,
# and only reporters asked for ``--reveal`` call it.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable


class Severity(enum.IntEnum):
    """How bad a finding is; ordered so ``--fail-on`` can compare."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, name: str) -> Severity:
        """A severity from its (case-insensitive) name."""
        try:
            return cls[name.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown severity {name!r}") from None


class Secret:
    """A matched value that hides itself from reprs, logs and exceptions."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The plaintext (only for ``--reveal`` triage and in-memory comparisons)."""
        return self._value

    def __len__(self) -> int:
        return len(self._value)

    def __repr__(self) -> str:
        return f"Secret(len={len(self._value)})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def fingerprint(self) -> str:
        """A short, stable digest of the value (never the value itself)."""
        return hashlib.sha256(b"vaultside-value\0" + self._value.encode()).hexdigest()[:12]

    def redacted(self) -> str:
        """A prefix, the length and a fingerprint: enough to triage, not enough to use."""
        n = len(self._value)
        keep = min(4, n // 5)
        return f"{self._value[:keep]}…(len {n}, fp {self.fingerprint()})"


@dataclass(frozen=True, slots=True)
class Location:
    """Where a chunk (and so a finding) came from.

    ``kind`` is ``image``, ``archive``, ``container`` or ``path``; ``target`` names the image,
    archive file, container or directory; ``path`` is a file path inside it or a pseudo path
    such as ``config/Env`` or ``container/Labels``; ``layer`` and ``created_by`` attribute a
    finding in an image layer to the Dockerfile instruction that made the layer.
    """

    kind: str
    target: str
    path: str
    line: int | None = None
    layer: str | None = None
    created_by: str | None = None
    status: str | None = None  # "deleted" / "overwritten" in a later layer, else None
    nested: tuple[str, ...] = ()  # members of nested archives, outermost first

    def display(self) -> str:
        """One-line human form."""
        p = "!".join((self.path, *self.nested)) if self.nested else self.path
        out = f"{self.target}:{p}"
        if self.line is not None:
            out += f":{self.line}"
        return out


BUNDLE_SEP = b"\n\0\n"  # ends each file of a bundle: a line end, and NUL is in no secret


NO_LINES = 0


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of text-ish bytes; ``first_line`` is the line number of its first byte, or
    ``NO_LINES`` when the text is not the file's own lines (strings of a binary file): its
    findings then carry no line number.

    A *bundle* of several small files has ``parts``: (offset in ``data``, location) of each
    file, in order; each file is followed by ``BUNDLE_SEP``.
    """

    data: bytes
    location: Location
    first_line: int = 1
    parts: tuple[tuple[int, Location], ...] = ()


@dataclass(frozen=True, slots=True)
class Candidate:
    """What a detector thinks is a secret: the rule, the value and its byte span in the chunk."""

    rule_id: str
    description: str
    severity: Severity
    secret: Secret
    start: int
    end: int
    generic: bool = False  # entropy-tested assignment rules get the stricter filters
    known: KnownMatch | None = None
    contextual: bool = False  # found by context, not by format: not reported in documentation


@dataclass(frozen=True, slots=True)
class KnownMatch:
    """A vaultside-managed secret recognised verbatim (or in a known encoding)."""

    path: str
    field: str
    version: int
    status: str  # current / previous / retired
    encoding: str = "raw"


@dataclass(frozen=True, slots=True)
class Finding:
    """One reported problem: a leaked secret or a broken container practice."""

    rule_id: str
    description: str
    severity: Severity
    location: Location
    secret: Secret | None = None
    known: KnownMatch | None = None
    practice: str | None = None  # e.g. "CIS Docker 5.4" for posture findings
    advice: str | None = None
    fingerprint: str = field(default="")

    def with_fingerprint(self) -> Finding:
        """This finding with its baseline fingerprint filled in."""
        return replace(self, fingerprint=baseline_fingerprint(self))

    @property
    def category(self) -> str:
        """``posture``, ``known`` or ``secret``."""
        if self.practice is not None or self.secret is None:
            return "posture"
        return "known" if self.known is not None else "secret"


def baseline_fingerprint(f: Finding) -> str:
    """A digest keyed on rule, target, path and value digest — no line numbers, no plaintext.

    # SECURITY: the value enters only through a one-way digest, so a baseline file never
    # contains the secret; lines and layer digests are left out so it survives line moves
    # and rebuilds.
    """
    h = hashlib.sha256()
    for part in (
        f.rule_id,
        f.location.kind,
        f.location.target,
        f.location.path,
        "!".join(f.location.nested),
        f.secret.fingerprint() if f.secret is not None else "",
    ):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


@dataclass(slots=True)
class ScanStats:
    """What a scan covered; sources add to it as they go (and warnings that did not stop it)."""

    files: int = 0
    bytes_scanned: int = 0
    bytes_read: int = 0  # raw input bytes consumed (archives: compressed), for progress
    bytes_total: int | None = None
    binary_skipped: int = 0
    archives_opened: int = 0
    layers: int = 0
    warnings: list[str] = field(default_factory=list)

    def merge(self, other: ScanStats) -> None:
        """Add a worker's counts to these."""
        self.files += other.files
        self.bytes_scanned += other.bytes_scanned
        self.bytes_read += other.bytes_read
        self.binary_skipped += other.binary_skipped
        self.archives_opened += other.archives_opened
        for w in other.warnings:
            self.warn(w)

    def warn(self, message: str) -> None:
        """Record a problem that did not stop the scan (never includes secret values)."""
        if len(self.warnings) < 1000:
            self.warnings.append(message)


class Source(Protocol):
    """Where bytes come from: yields chunks with their attribution."""

    def chunks(self, stats: ScanStats) -> Iterator[Chunk]:
        """Every chunk to scan, streamed (memory stays bounded)."""
        ...

    def finalize(self, findings: list[Finding]) -> list[Finding]:
        """Fix up attribution once everything was read (layer order, whiteouts) and add
        findings that are not about bytes (container posture)."""
        ...


@runtime_checkable
class Splittable(Protocol):
    """A source that can hand slices of its work to worker processes."""

    def split(self, parts: int) -> Iterable[Source]:
        """Picklable sub-sources, about ``parts`` of them, produced lazily (their chunks are
        then not yielded by this source)."""
        ...


@runtime_checkable
class Measured(Protocol):
    """A source that knows how many input bytes it will read (for overall progress)."""

    def size_hint(self) -> int | None:
        """Input bytes ``chunks`` will count in ``ScanStats.bytes_read``, if known up front.

        A source that answers does not touch ``bytes_total``; one that answers None may add
        to it once it knows (e.g. after reading a manifest).
        """
        ...


class Detector(Protocol):
    """Pure: bytes in, candidates out; no I/O."""

    def detect(self, data: bytes) -> Iterable[Candidate]:
        """Candidates found in ``data``."""
        ...


class Filter(Protocol):
    """Decides whether a candidate is a false positive."""

    def rejects(self, cand: Candidate, data: bytes, location: Location) -> bool:
        """True if ``cand`` should not be reported."""
        ...


class Reporter(Protocol):
    """Renders findings."""

    def render(self, findings: list[Finding], *, reveal: bool = False) -> str:
        """The findings as text in this reporter's format."""
        ...
