"""The hash chain of an audit file, and its structural verifier.

Each line is one JSON record in canonical form (sorted keys, no spaces). It carries ``prev``,
the ``hash`` of the line before it (``GENESIS`` for the very first record of the chain), its
``seq`` (1, 2, 3, ... across rotated files), and its own ``hash``: SHA-256 over the canonical
JSON of the record without ``hash`` and ``mac``. Records written while the server holds the
chain key also carry ``mac``: HMAC-SHA256 under that key over the same bytes (see
``vaultside.audit.verify`` and docs/auth-audit.md). Editing a line breaks its own hash;
removing, inserting or reordering lines breaks the ``prev`` links, and ``verify_file`` tells
which with line numbers. That check needs no key, so anyone who can write the file can also
re-chain it: the ``mac`` links and the anchor kept in storage catch that, and a truncated tail.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

GENESIS = "0" * 64


def canonical(record: Mapping[str, object]) -> bytes:
    """The canonical JSON bytes of a record (what is hashed and written)."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


_LINK_FIELDS = ("hash", "mac")


def _body(record: Mapping[str, object]) -> bytes:
    return canonical({k: v for k, v in record.items() if k not in _LINK_FIELDS})


def record_hash(record: Mapping[str, object]) -> str:
    """SHA-256 hex over the canonical record without its ``hash`` and ``mac`` fields."""
    return hashlib.sha256(_body(record)).hexdigest()


def record_mac(key: bytes, record: Mapping[str, object]) -> str:
    """HMAC-SHA256 hex under the chain key over the same bytes as ``record_hash``."""
    return hmac.new(key, _body(record), hashlib.sha256).hexdigest()


def chain(
    record: Mapping[str, object], prev: str, seq: int | None = None, key: bytes | None = None
) -> tuple[bytes, str, str | None]:
    """The line (with newline) for ``record`` chained after ``prev``: (line, hash, mac).

    The line is the canonical body with ``"hash"`` (and ``"mac"`` when ``key`` is given)
    appended as the last keys, so the body is serialized once; verification re-serializes
    the parsed record canonically anyway.
    """
    body = {k: v for k, v in record.items() if k not in ("prev", "seq", *_LINK_FIELDS)}
    body["prev"] = prev
    if seq is not None:
        body["seq"] = seq
    encoded = canonical(body)
    digest = hashlib.sha256(encoded).hexdigest()
    tail = b',"hash":"' + digest.encode() + b'"'
    mac = None
    if key is not None:
        mac = hmac.new(key, encoded, hashlib.sha256).hexdigest()
        tail += b',"mac":"' + mac.encode() + b'"'
    return encoded[:-1] + tail + b"}\n", digest, mac


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of ``verify_file``: ``problems`` name line numbers (1-based)."""

    ok: bool
    records: int
    problems: list[str] = field(default_factory=list)
    last_hash: str = GENESIS

    def to_json(self) -> dict[str, object]:
        """JSON form for ``vaultside audit verify --json``."""
        return {
            "ok": self.ok,
            "records": self.records,
            "problems": list(self.problems),
            "last_hash": self.last_hash,
        }


@dataclass(slots=True)
class ParsedLine:
    """One line as parsed for verification (``record`` is None when it is not a record)."""

    number: int
    stored: str | None  # the hash the line claims
    prev: str | None
    intact: bool  # its content matches its claimed hash
    record: dict[str, object] | None = None


def _parse(number: int, raw: bytes) -> ParsedLine:
    try:
        obj = json.loads(raw)
    except ValueError:
        return ParsedLine(number, None, None, False)
    if not isinstance(obj, dict):
        return ParsedLine(number, None, None, False)
    stored, prev = obj.get("hash"), obj.get("prev")
    if not isinstance(stored, str) or not isinstance(prev, str):
        return ParsedLine(number, None, None, False)
    return ParsedLine(number, stored, prev, record_hash(obj) == stored, obj)


def verify_lines(lines: Iterable[bytes]) -> VerifyResult:
    """Verify a sequence of raw lines (without newlines); see ``verify_file``."""
    parsed = [_parse(i, raw) for i, raw in enumerate(lines, start=1) if raw.strip()]
    problems = structure_problems(parsed)
    messages = [f"line {n}: {msg}" for n, msg in problems]
    last = parsed[-1].stored if parsed and parsed[-1].stored else GENESIS
    return VerifyResult(ok=not messages, records=len(parsed), problems=messages, last_hash=last)


def parse_line(number: int, raw: bytes) -> ParsedLine:
    """One raw line (without newline) as the structural check sees it."""
    return _parse(number, raw)


def structure_problems(parsed: list[ParsedLine]) -> list[tuple[int, str]]:
    """(line number, problem) for every hash/link problem in ``parsed``, sorted, no repeats."""
    problems: list[tuple[int, str]] = []
    where: dict[str, int] = {}
    for ln in parsed:
        if ln.stored is None:
            problems.append((ln.number, "not a valid audit record (edited or truncated)"))
        elif not ln.intact:
            problems.append((ln.number, "edited: content does not match its hash"))
        if ln.stored is not None:
            if ln.stored in where:
                problems.append((ln.number, f"duplicate of line {where[ln.stored]}"))
            else:
                where[ln.stored] = ln.number
    referenced = {ln.prev for ln in parsed if ln.prev is not None}
    for idx, ln in enumerate(parsed):
        if ln.prev is None:
            continue
        expected = parsed[idx - 1].stored if idx > 0 else GENESIS
        if ln.prev == expected:
            continue
        if ln.prev == GENESIS:
            problems.append((ln.number, "chain restarts here (records before it replaced)"))
            continue
        target = where.get(ln.prev)
        if target is None:
            problems.append(
                (ln.number, "chain broken: the record before it was removed or altered")
            )
        elif target > ln.number:
            problems.append((ln.number, f"reordered: it belongs after line {target}"))
        else:
            between = [p for p in parsed if target < p.number < ln.number]
            if between and all(p.stored not in referenced for p in between):
                nums = ", ".join(str(p.number) for p in between)
                for p in between:
                    problems.append((p.number, f"inserted: not part of the chain (line {nums})"))
            else:
                problems.append((ln.number, f"reordered: it belongs after line {target}"))
    inserted = {n for n, msg in problems if msg.startswith("inserted")}
    problems = [(n, m) for n, m in problems if n not in inserted or not m.startswith("chain")]
    problems.sort(key=lambda p: p[0])
    return list(dict.fromkeys(problems))


def verify_file(path: Path) -> VerifyResult:
    """Check every line's hash and ``prev`` link; report edited, removed, inserted, reordered."""
    with path.open("rb") as f:
        return verify_lines(line.rstrip(b"\n") for line in f)


@dataclass(frozen=True, slots=True)
class Link:
    """The chain position of one keyed record: what the anchor in storage remembers."""

    seq: int
    hash: str
    mac: str

    def to_json(self) -> dict[str, object]:
        """JSON form (stored in the barrier, shown by ``audit verify --json``)."""
        return {"seq": self.seq, "hash": self.hash, "mac": self.mac}
