"""The compiled keyword database kept on disk: used only when it is intact and ours."""

from __future__ import annotations

import os
from pathlib import Path

import hyperscan
import pytest

from vaultside.scan.detectors import hscache
from vaultside.scan.detectors.hscache import keyword_database
from vaultside.scan.detectors.rules import RuleDetector, default_rules

KEYWORDS = [b"token", b"passw", b"ghp_", b"://"]
TEXT = b"x TOKEN=1 https://u:p@h ghp_abc passwd Token"


def hits(db: hyperscan.Database) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    db.scan(TEXT, match_event_handler=lambda i, _f, to, _fl, _c: out.append((i, to)))
    return sorted(out)


def test_a_cached_database_finds_what_a_compiled_one_finds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled = hits(keyword_database(KEYWORDS, None))
    first = keyword_database(KEYWORDS, tmp_path)
    files = list((tmp_path / "hyperscan").glob("*.db"))
    assert len(files) == 1 and hits(first) == compiled
    assert not (files[0].parent.stat().st_mode & 0o077)  # private to this user

    def refuse(*_a: object, **_k: object) -> None:
        raise AssertionError("compiled although the cache holds the database")

    monkeypatch.setattr(hscache.hyperscan, "Database", refuse)
    assert hits(keyword_database(KEYWORDS, tmp_path)) == compiled


def test_other_keywords_get_their_own_database(tmp_path: Path) -> None:
    keyword_database(KEYWORDS, tmp_path)
    assert hits(keyword_database(KEYWORDS[:2], tmp_path)) == hits(
        keyword_database(KEYWORDS[:2], None)
    )
    assert len(list((tmp_path / "hyperscan").glob("*.db"))) == 2


def test_a_damaged_file_is_compiled_again_and_replaced(tmp_path: Path) -> None:
    keyword_database(KEYWORDS, tmp_path)
    (path,) = (tmp_path / "hyperscan").glob("*.db")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert hits(keyword_database(KEYWORDS, tmp_path)) == hits(keyword_database(KEYWORDS, None))
    assert path.read_bytes() != bytes(data)  # rewritten
    path.write_bytes(b"short")
    assert hits(keyword_database(KEYWORDS, tmp_path)) == hits(keyword_database(KEYWORDS, None))


def test_a_database_others_could_write_is_not_used(tmp_path: Path) -> None:
    """A valid file planted by someone else (matching nothing we need) must not be loaded."""
    keyword_database(KEYWORDS, tmp_path)
    (path,) = (tmp_path / "hyperscan").glob("*.db")
    other = hyperscan.dumpb(keyword_database([b"zzzzzz"], None))
    path.write_bytes(hscache.hashlib.sha256(other).digest() + other)
    os.chmod(path.parent, 0o777)
    try:
        assert hits(keyword_database(KEYWORDS, tmp_path)) == hits(keyword_database(KEYWORDS, None))
    finally:
        os.chmod(path.parent, 0o700)


def test_an_unwritable_cache_is_no_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert hits(keyword_database(KEYWORDS, blocker)) == hits(keyword_database(KEYWORDS, None))


def test_the_rule_detector_with_a_cache_finds_the_same(tmp_path: Path) -> None:
    rules = default_rules()
    text = b"password = 'hunter2-not-a-real-one'\nGITHUB_TOKEN=ghp_" + b"a" * 36 + b"\n"
    plain = [c.rule_id for c in RuleDetector(rules).detect(text)]
    RuleDetector(rules, cache_dir=tmp_path)
    assert [c.rule_id for c in RuleDetector(rules, cache_dir=tmp_path).detect(text)] == plain
