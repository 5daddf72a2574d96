"""Custom rules files: gitleaks' ``[[rules]]`` format is read, and no key is silently ignored."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.unit.scan.credgen import AN, HEX, github_token, rnd
from vaultside.cli.main import cli
from vaultside.errors import InvalidRequestError
from vaultside.scan.rulefile import parse_rule_file

GITLEAKS = """
title = "acme gitleaks config"

[extend]
useDefault = true

[[rules]]
id = "acme-api-key"
description = "ACME API key"
regex = '''(?i)(acme_(?:live|test))_key\\s*[:=]\\s*['"]?([a-z0-9]{32})\\b'''
secretGroup = 2
entropy = 3.0
keywords = ["acme_live", "acme_test"]
tags = ["api"]

  [[rules.allowlists]]
  description = "the vendor's documented sample"
  stopwords = ["00000"]

  [[rules.allowlists]]
  regexTarget = "line"
  regexes = ['''#\\s*gitleaks:allow''']

[[rules]]
id = "acme-webhook"
description = "ACME webhook secret, only in .ini files"
regex = '''whsec_acme_([0-9a-f]{40})'''
path = '''\\.ini$'''
keywords = ["whsec_acme_"]

[allowlist]
description = "fixtures"
paths = ['''^fixtures/''']
"""


def _scan(root: Path, rules: Path) -> tuple[int, dict[str, dict[str, object]], str]:
    res = CliRunner().invoke(
        cli, ["scan", "path", str(root), "--rules", str(rules), "--format", "json", "--reveal"]
    )
    found = {}
    if res.exit_code in (0, 1):
        found = {f["value"]: f for f in json.loads(res.stdout)["findings"] if "value" in f}
    return res.exit_code, found, res.stderr


def test_gitleaks_rules_are_read(tmp_path: Path) -> None:
    rng = random.Random(5)
    key, doc_key, allowed, fixture = (rnd(rng, AN.lower(), 32) for _ in range(4))
    doc_key = doc_key[:10] + "00000" + doc_key[15:]
    hook = rnd(rng, HEX, 40)
    root = tmp_path / "tree"
    (root / "fixtures").mkdir(parents=True)
    (root / "app.env").write_text(
        f"ACME_LIVE_KEY={key}\nacme_test_key: '{doc_key}'\n"
        f"acme_live_key = {allowed}  # gitleaks:allow\nWEBHOOK=whsec_acme_{hook}\n"
    )
    (root / "hooks.ini").write_text(f"secret = whsec_acme_{hook}\n")
    (root / "fixtures" / "a.env").write_text(f"acme_live_key={fixture}\n")
    rules = tmp_path / "gitleaks.toml"
    rules.write_text(GITLEAKS)
    code, found, err = _scan(root, rules)
    assert code == 1, err
    assert found[key]["rule_id"] == "acme-api-key"  # secretGroup 2: the key alone
    assert found[key]["location"]["path"] == "app.env"
    assert doc_key not in found and allowed not in found and fixture not in found
    assert [f["location"]["path"] for f in found.values() if f["rule_id"] == "acme-webhook"] == [
        "hooks.ini"
    ]


def test_gitleaks_disabled_rules(tmp_path: Path) -> None:
    tok = github_token(random.Random(8))
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "ci.env").write_text(f"GITHUB_TOKEN={tok}\n")
    rules = tmp_path / "r.toml"
    rules.write_text('[extend]\ndisabledRules = ["github-token"]\n')
    _code, found, _err = _scan(tmp_path / "t", rules)
    assert tok not in found or found[tok]["rule_id"] != "github-token"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[rules]]\nid = 'x'\nregexx = 'a'\n", "unknown key 'regexx'"),
        ("[[rules]]\nid = 'x'\nregex = 'a'\nsecretgroup = 1\n", "unknown key 'secretgroup'"),
        ("[[rule]]\nid = 'x'\nregex = 'a'\nkeyword = ['a']\n", "unknown key 'keyword'"),
        ("[[rulez]]\nid = 'x'\nregex = 'a'\n", "unknown key 'rulez'"),
        ("title = 'nothing'\n", "defines no rules"),
        ("", "defines no rules"),
        ("[[rules]]\nid = 'x'\npath = 'a'\n", "path-only rules"),
        ("[[rules]]\nid = 'x'\nregex = '(a)'\nsecretGroup = 2\n", "secretGroup 2"),
        ("[[rules]]\nid = 'x'\nregex = 'a('\n", "invalid regex"),
        (
            "[[rules]]\nid = 'x'\nregex = 'a'\n[[rules.allowlists]]\ncommits = ['abc']\n",
            "'commits' is not supported",
        ),
        ("[extend]\npath = 'base.toml'\n", "[extend] path is not supported"),
        ("[allowlist]\nregexTarget = 'line'\n", "needs regexes, paths or stopwords"),
    ],
)
def test_rules_file_never_silently_matches_nothing(text: str, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message.replace("[", r"\[")):
        parse_rule_file(text, "r.toml")


def test_cli_rejects_gitleaks_typo_with_exit_2(tmp_path: Path) -> None:
    rules = tmp_path / "r.toml"
    rules.write_text("[[rules]]\nid = 'x'\nregex = 'a'\nkeyword = ['a']\n")
    (tmp_path / "d").mkdir()
    res = CliRunner().invoke(cli, ["scan", "path", str(tmp_path / "d"), "--rules", str(rules)])
    assert res.exit_code == 2 and "unknown key 'keyword'" in res.stderr
