"""The hash chain verifier: intact files pass; edits, removals, insertions, reorders fail."""

from __future__ import annotations

import json
from pathlib import Path

from vaultside.audit.chain import GENESIS, chain, verify_file, verify_lines


def _lines(n: int) -> list[bytes]:
    out, prev = [], GENESIS
    for i in range(n):
        line, prev, _ = chain({"request_id": f"r{i}", "status": 200}, prev)
        out.append(line.rstrip(b"\n"))
    return out


def test_intact_chain() -> None:
    result = verify_lines(_lines(5))
    assert result.ok and result.records == 5 and result.problems == []
    assert result.last_hash == json.loads(_lines(5)[-1])["hash"]
    assert verify_lines([]).ok


def test_edit_detected() -> None:
    lines = _lines(5)
    lines[2] = lines[2].replace(b'"status":200', b'"status":201')
    result = verify_lines(lines)
    assert not result.ok
    assert result.problems == ["line 3: edited: content does not match its hash"]


def test_edit_with_recomputed_hash_detected() -> None:
    lines = _lines(5)
    rec = json.loads(lines[2])
    rec["status"] = 500
    forged, _, _ = chain(rec, rec["prev"])
    lines[2] = forged.rstrip(b"\n")
    result = verify_lines(lines)
    assert result.problems == ["line 4: chain broken: the record before it was removed or altered"]


def test_removal_detected() -> None:
    lines = _lines(5)
    del lines[2]
    result = verify_lines(lines)
    assert result.problems == ["line 3: chain broken: the record before it was removed or altered"]
    first_removed = _lines(5)[1:]
    assert verify_lines(first_removed).problems == [
        "line 1: chain broken: the record before it was removed or altered"
    ]


def test_insertion_detected() -> None:
    lines = _lines(4)
    prev = json.loads(lines[1])["hash"]
    fake, _, _ = chain({"request_id": "evil", "status": 200}, prev)
    lines.insert(2, fake.rstrip(b"\n"))
    result = verify_lines(lines)
    assert not result.ok
    assert any(p.startswith("line 3: inserted") for p in result.problems), result.problems
    assert all(p.startswith("line 3:") for p in result.problems)


def test_insertion_with_random_prev_detected() -> None:
    lines = _lines(4)
    fake, _, _ = chain({"request_id": "evil"}, "f" * 64)
    lines.insert(1, fake.rstrip(b"\n"))
    result = verify_lines(lines)
    assert result.problems == ["line 2: inserted: not part of the chain (line 2)"]


def test_reorder_detected() -> None:
    lines = _lines(5)
    lines[1], lines[2] = lines[2], lines[1]
    result = verify_lines(lines)
    assert not result.ok
    assert "line 2: reordered: it belongs after line 3" in result.problems
    assert "line 3: reordered: it belongs after line 1" in result.problems


def test_duplicate_and_garbage_detected() -> None:
    lines = _lines(3)
    dup = [*lines, lines[1]]
    assert "line 4: duplicate of line 2" in verify_lines(dup).problems
    garbage = [lines[0], b"{not json", lines[1], lines[2]]
    problems = verify_lines(garbage).problems
    assert problems[0] == "line 2: not a valid audit record (edited or truncated)"


def test_verify_file(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    path.write_bytes(b"\n".join(_lines(3)) + b"\n")
    assert verify_file(path).ok
    assert verify_file(path).records == 3
