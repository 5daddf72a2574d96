"""The hash chain of an audit file, and its verifier.

Each line is one JSON record in canonical form (sorted keys, no spaces). It carries ``prev``,
the ``hash`` of the line before it (``GENESIS`` for the first line of a file), and its own
``hash``: SHA-256 over the canonical JSON of the record without ``hash``. Editing a line breaks
its own hash; removing, inserting or reordering lines breaks the ``prev`` links, and
``verify_file`` tells which with line numbers. Removing records from the *end* of a file
cannot be seen from the file alone; keep the last hash elsewhere (e.g. ship it to another
sink) to catch that.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

GENESIS = "0" * 64


def canonical(record: Mapping[str, object]) -> bytes:
    """The canonical JSON bytes of a record (what is hashed and written)."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def record_hash(record: Mapping[str, object]) -> str:
    """SHA-256 hex over the canonical record without its ``hash`` field."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical(body)).hexdigest()


def chain(record: Mapping[str, object], prev: str) -> tuple[bytes, str]:
    """The line (with newline) for ``record`` chained after ``prev``, and its hash.

    The line is the canonical body with ``"hash"`` appended as the last key, so the body is
    serialized once; verification re-serializes the parsed record canonically anyway.
    """
    body = {k: v for k, v in record.items() if k not in ("prev", "hash")}
    body["prev"] = prev
    encoded = canonical(body)
    digest = hashlib.sha256(encoded).hexdigest()
    return encoded[:-1] + b',"hash":"' + digest.encode() + b'"}\n', digest


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
class _Line:
    number: int
    stored: str | None  # the hash the line claims
    prev: str | None
    intact: bool  # its content matches its claimed hash


def _parse(number: int, raw: bytes) -> _Line:
    try:
        obj = json.loads(raw)
    except ValueError:
        return _Line(number, None, None, False)
    if not isinstance(obj, dict):
        return _Line(number, None, None, False)
    stored, prev = obj.get("hash"), obj.get("prev")
    if not isinstance(stored, str) or not isinstance(prev, str):
        return _Line(number, None, None, False)
    return _Line(number, stored, prev, record_hash(obj) == stored)


def verify_lines(lines: Iterable[bytes]) -> VerifyResult:
    """Verify a sequence of raw lines (without newlines); see ``verify_file``."""
    parsed = [_parse(i, raw) for i, raw in enumerate(lines, start=1) if raw.strip()]
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
    messages = [f"line {n}: {msg}" for n, msg in dict.fromkeys(problems)]
    last = parsed[-1].stored if parsed and parsed[-1].stored else GENESIS
    return VerifyResult(ok=not messages, records=len(parsed), problems=messages, last_hash=last)


def verify_file(path: Path) -> VerifyResult:
    """Check every line's hash and ``prev`` link; report edited, removed, inserted, reordered."""
    with path.open("rb") as f:
        return verify_lines(line.rstrip(b"\n") for line in f)
