"""Verify an audit chain across its rotated files, with or without the chain key.

Three levels, each adding to the one before:

- structure (no key): every record's SHA-256 ``hash`` and ``prev`` link, across the rotated
  files (oldest first) and the current file; edits, removals, insertions and reorders that
  were not re-chained, and a chain that does not begin at genesis.
- key: every record's ``mac`` (HMAC-SHA256 under the chain key from the barrier). A record
  edited and re-chained with SHA-256 fails here. Records written before unseal have no
  ``mac``; they are protected by the next keyed record's MAC over their hash, so only
  unkeyed records *after* the last keyed one are reported (as a note) as unprotected. A file
  keyed from its first record (the volume plugin's admission audit, ``every_keyed``) has no
  such records: there a record without ``mac`` is a problem (stripped and re-chained).
- anchor: the latest link the server stored must be in the files, with its hash and MAC. A
  truncated tail, a deleted file and a chain restarted from genesis fail here.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from pathlib import Path

from vaultside.audit.chain import GENESIS, Link, ParsedLine, parse_line, record_mac
from vaultside.audit.chain import structure_problems as _structure
from vaultside.audit.sinks import rotated_files

_BAD_MAC = "MAC does not match: edited or re-chained without the key"
_NO_MAC = "no MAC in a file keyed from its first record: re-chained without the key"


@dataclass(slots=True)
class ChainReport:
    """The outcome of ``verify_chain``; ``problems`` name file and line."""

    ok: bool
    records: int
    files: list[str]
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    last_hash: str = GENESIS
    keyed: bool = False
    anchor: Link | None = None

    def to_json(self) -> dict[str, object]:
        """JSON form for ``vaultside audit verify --json``."""
        return {
            "ok": self.ok,
            "records": self.records,
            "files": list(self.files),
            "problems": list(self.problems),
            "notes": list(self.notes),
            "last_hash": self.last_hash,
            "keyed": self.keyed,
            "anchor": self.anchor.to_json() if self.anchor is not None else None,
        }


def _seq(line: ParsedLine) -> int | None:
    seq = line.record.get("seq") if line.record is not None else None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


def _read(files: list[Path]) -> tuple[list[ParsedLine], list[tuple[str, int]]]:
    """Every non-empty line of ``files`` (global numbers from 1) and where each came from."""
    parsed: list[ParsedLine] = []
    where: list[tuple[str, int]] = [("", 0)]  # index = global number
    for path in files:
        with path.open("rb") as f:
            for local, raw in enumerate(f, start=1):
                raw = raw.rstrip(b"\n")
                where.append((path.name, local))
                if raw.strip():
                    parsed.append(parse_line(len(where) - 1, raw))
    return parsed, where


def _mac_problems(parsed: list[ParsedLine], key: bytes) -> tuple[list[tuple[int, str]], int]:
    """MAC mismatches, and how many records at the end carry no MAC."""
    problems: list[tuple[int, str]] = []
    unkeyed_tail = 0
    for line in parsed:
        if line.record is None:
            continue
        mac = line.record.get("mac")
        if mac is None:
            unkeyed_tail += 1
            continue
        unkeyed_tail = 0
        if not isinstance(mac, str) or not hmac.compare_digest(record_mac(key, line.record), mac):
            problems.append((line.number, _BAD_MAC))
    return problems, unkeyed_tail


def _anchor_problems(parsed: list[ParsedLine], anchor: Link) -> list[tuple[int, str]]:
    found = [line for line in parsed if _seq(line) == anchor.seq]
    seqs = [s for s in (_seq(line) for line in parsed) if s is not None]
    end = parsed[-1].number if parsed else 0
    if not found:
        top = max(seqs, default=0)
        if top < anchor.seq:
            return [
                (
                    end,
                    f"tail truncated or file deleted: the anchored record seq {anchor.seq}"
                    f" is missing (the files end at seq {top})",
                )
            ]
        return [(end, f"the anchored record seq {anchor.seq} is missing")]
    line = found[-1]
    mac = line.record.get("mac") if line.record is not None else None
    if line.stored != anchor.hash or not isinstance(mac, str) or mac != anchor.mac:
        return [
            (
                line.number,
                f"not the anchored record seq {anchor.seq}: chain restarted or rewritten",
            )
        ]
    return []


def verify_chain(
    path: Path,
    *,
    key: bytes | None = None,
    anchor: Link | None = None,
    rotated: bool = True,
    every_keyed: bool = False,
) -> ChainReport:
    """Verify ``path`` (after its rotated files, unless ``rotated`` is False); see module doc.

    Raises ``OSError`` if a file cannot be read.
    """
    files = [*rotated_files(path), path] if rotated else [path]
    files = [f for f in files if f != path or f.exists()] or [path]
    parsed, where = _read(files)
    problems = _structure(parsed)
    if parsed and parsed[0].prev not in (None, GENESIS):
        first = parsed[0].number
        problems = [p for p in problems if p[0] != first or not p[1].startswith("chain broken")]
        start = _seq(parsed[0])
        problems.insert(
            0,
            (
                first,
                f"chain begins mid-way (seq {start}): the records before it are missing"
                " (file deleted or pruned)",
            ),
        )
    notes: list[str] = []
    if key is not None:
        mac_problems, unkeyed_tail = _mac_problems(parsed, key)
        problems += mac_problems
        if every_keyed:
            problems += [
                (line.number, _NO_MAC)
                for line in parsed
                if line.record is not None and "mac" not in line.record
            ]
        elif unkeyed_tail:
            notes.append(
                f"the last {unkeyed_tail} record(s) carry no MAC (written before unseal):"
                " only their structure is checked"
            )
    else:
        notes.append(
            "structure only: without the chain key a re-chained edit or a truncated tail"
            " cannot be detected (pass --data-dir)"
        )
    if anchor is not None:
        problems += _anchor_problems(parsed, anchor)
    elif key is not None:
        notes.append("no anchor in storage yet: a truncated tail cannot be detected")
    problems = sorted(dict.fromkeys(problems), key=lambda p: p[0])
    several = len(files) > 1

    def label(number: int) -> str:
        if number == 0:
            return "end"
        name, local = where[number]
        return f"{name} line {local}" if several else f"line {local}"

    last = parsed[-1].stored if parsed and parsed[-1].stored else GENESIS
    return ChainReport(
        ok=not problems,
        records=len(parsed),
        files=[str(f) for f in files],
        problems=[f"{label(n)}: {msg}" for n, msg in problems],
        notes=notes,
        last_hash=last,
        keyed=key is not None,
        anchor=anchor,
    )
