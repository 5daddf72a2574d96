"""Every built-in rule: generated positives are found, near misses are not (full pipeline)."""

from __future__ import annotations

import random

import pytest

from tests.unit.scan.credgen import CASES
from vaultside.errors import InvalidRequestError
from vaultside.scan.base import Chunk, Location
from vaultside.scan.detectors.rules import (
    RuleDetector,
    base62,
    default_rules,
    github_checksum_ok,
    load_rules,
)
from vaultside.scan.scanner import Scanner

RULE_IDS = [r.id for r in default_rules()]
SCANNER = Scanner()


def rule_hits(line: str, path: str = "app/config.txt") -> set[str]:
    chunk = Chunk((line + "\n").encode(), Location("path", "t", path))
    return {f.rule_id for f in SCANNER._chunk_findings(chunk)}


def test_at_least_40_rules_with_unique_ids() -> None:
    assert len(RULE_IDS) >= 40
    assert len(set(RULE_IDS)) == len(RULE_IDS)


def test_every_rule_has_a_test_table() -> None:
    assert set(RULE_IDS) == set(CASES)


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_rule_table(rule_id: str) -> None:
    rng = random.Random(f"vaultside-{rule_id}")
    for _ in range(3):
        positives, near_misses = CASES[rule_id](rng)
        assert positives and near_misses
        for line in positives:
            assert rule_id in rule_hits(line), f"{rule_id} missed a generated positive"
        for line in near_misses:
            assert rule_id not in rule_hits(line), f"{rule_id} flagged a near miss"


def test_finding_spans_multiple_chunks_lines_are_counted() -> None:
    rng = random.Random(1)
    (line,), _ = CASES["gitlab-pat"](rng)
    data = ("filler\n" * 41 + line + "\n").encode()
    findings = SCANNER._chunk_findings(Chunk(data, Location("path", "t", "f"), first_line=100))
    assert [(f.rule_id, f.location.line) for f in findings] == [("gitlab-pat", 141)]


def test_base62_and_github_checksum() -> None:
    assert base62(0, 6) == "000000"
    assert base62(61, 1) == "z"
    assert base62(62, 2) == "10"
    assert not github_checksum_ok("ghp_" + "a" * 36)


def test_keyword_prefilter_is_case_insensitive() -> None:
    det = RuleDetector([r for r in default_rules() if r.id == "generic-secret-assignment"])
    rng = random.Random(7)
    value = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789ABC") for _ in range(20))
    assert [c.rule_id for c in det.detect(f"DB_PaSsWoRd={value}\n".encode())]


def test_custom_rules_from_toml() -> None:
    rules = load_rules(
        """
[[rule]]
id = "acme-internal-token"
description = "ACME internal token"
severity = "critical"
keywords = ["acme_"]
regex = '''\\b(acme_[a-z0-9]{24})\\b'''
"""
    )
    det = RuleDetector(rules)
    token = "acme_" + "".join(random.Random(3).choice("abcdefghij0123456789") for _ in range(24))
    found = list(det.detect(f"x={token}\n".encode()))
    assert [c.rule_id for c in found] == ["acme-internal-token"]
    assert found[0].severity.name == "CRITICAL"
    assert not list(det.detect(f"x={token[:-2]}\n".encode()))


@pytest.mark.parametrize(
    "text",
    [
        "[[rule]]\nid = 'x'\n",  # no regex
        "[[rule]]\nid = 'x'\nregex = '('\n",  # bad regex
        "[[rule]]\nid = 'x'\nregex = 'a'\nseverity = 'urgent'\n",
        "[[rule]]\nid = 'x'\nregex = 'a'\nvalidator = 'nope'\n",
        "not toml [",
    ],
)
def test_bad_custom_rules_are_rejected_clearly(text: str) -> None:
    with pytest.raises(InvalidRequestError):
        load_rules(text, "custom.toml")


def test_rule_stopwords_make_a_match_a_placeholder() -> None:
    rules = load_rules(
        "[[rule]]\n"
        'id = "acme-key"\n'
        'keywords = ["acme_key"]\n'
        "regex = '''acme_key=(\\S+)'''\n"
        'stopwords = ["staging"]\n'
    )
    det = RuleDetector(rules)
    assert [c.rule_id for c in det.detect(b"acme_key=k9Qz2LmP4xWv8RtY\n")] == ["acme-key"]
    assert not list(det.detect(b"acme_key=k9Qz2STAGINGxWv8RtY\n"))
