"""False-positive filters: the decoy set yields nothing; each filter is needed."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.unit.scan.credgen import AN, rnd
from tests.unit.scan.decoys import decoy_files
from vaultside.scan.base import Candidate, Location, Secret, Severity
from vaultside.scan.detectors.entropy import char_classes, looks_random, shannon_entropy
from vaultside.scan.filters import (
    GenericValueFilter,
    PlaceholderFilter,
    ReferenceFilter,
    is_documentation,
)
from vaultside.scan.scanner import Scanner
from vaultside.scan.sources.path import PathSource


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def test_decoy_set_is_not_reported(tmp_path: Path) -> None:
    write_tree(tmp_path, decoy_files(random.Random(11)))
    result = Scanner().scan([PathSource(tmp_path)])
    assert [(f.rule_id, f.location.display()) for f in result.findings] == []
    assert result.stats.files >= 10


def test_decoys_are_reported_without_filters(tmp_path: Path) -> None:
    """The decoys do reach the detectors: it is the filters that drop them."""
    write_tree(tmp_path, decoy_files(random.Random(11)))
    result = Scanner(filters=[]).scan([PathSource(tmp_path)])
    assert len(result.findings) >= 10


def cand(value: str, *, generic: bool = True) -> Candidate:
    return Candidate("r", "d", Severity.HIGH, Secret(value), 0, len(value), generic=generic)


LOC = Location("path", "t", "app/config")


@pytest.mark.parametrize(
    ("value", "rejected"),
    [
        ("changeme", True),
        ("<your-token>", True),
        ("AKIAABCDEFGHIEXAMPLE", True),
        ("xxxxxxxxxxxxxxxx", True),
        ("aaaaaaaaaaaa", True),
        ("password", True),
        ("MYTOKEN1", True),
        ("XYZ12345", True),
        ("bm90IG15IHJlYWwgcGFzc3dvcmQ=", True),  # base64 of "not my real password"
        ("k9Qz2LmP4xWv8RtY", False),
        ("X7K2P9Q4ZLM3", False),
    ],
)
def test_placeholder_filter(value: str, rejected: bool) -> None:
    assert PlaceholderFilter().rejects(cand(value), value.encode(), LOC) is rejected


@pytest.mark.parametrize(
    ("value", "rejected"),
    [
        ("${DB_PASSWORD}", True),
        ("$DB_PASSWORD", True),
        ("{{.Values.secret}}", True),
        ("os.environ['X']", True),
        ("process.env.TOKEN", True),
        ("kv:app/db#password", True),
        ("%(password)s", True),
        ("k9Qz2LmP4xWv8RtY", False),
    ],
)
def test_reference_filter(value: str, rejected: bool) -> None:
    assert ReferenceFilter().rejects(cand(value), value.encode(), LOC) is rejected


@pytest.mark.parametrize(
    ("value", "rejected"),
    [
        ("d41d8cd98f00b204e9800998ecf8427e", True),  # md5 of ""
        ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", True),
        ("sha512-" + "A" * 20, True),
        ("123e4567-e89b-12d3-a456-426614174000", True),
        ("this.state.token", True),
        ("getToken", True),
        (":_Stop_state_ref", True),
        ("exports2.STRICT_TOKEN.concat", True),
        ("line_js_1.tokenize", True),
        ("Root%20CA%20Certificates", True),
        ("PKCS7PrivateKeyTypes", True),
        ("boto3_client", True),
        ("A&tokenb=B", True),
        ("std::string2", True),
        ("/run/secrets/db", True),
        ("AAAAB3NzaC1yc2EAAAADAQABAAABAQ", True),
        ("k9Qz2LmP4xWv8RtY", False),
    ],
)
def test_generic_value_filter(value: str, rejected: bool) -> None:
    assert GenericValueFilter().rejects(cand(value), value.encode(), LOC) is rejected


def test_generic_filter_leaves_specific_rules_alone() -> None:
    value = "d41d8cd98f00b204e9800998ecf8427e"
    assert not GenericValueFilter().rejects(cand(value, generic=False), value.encode(), LOC)


def test_lockfiles_and_public_key_lines_are_ignored_for_generic_values() -> None:
    value = rnd(random.Random(2), AN, 20)
    lock = Location("path", "t", "web/package-lock.json")
    assert GenericValueFilter().rejects(cand(value), value.encode(), lock)
    line = f"public_key = {value}".encode()
    c = Candidate("r", "d", Severity.HIGH, Secret(value), 13, 13 + len(value), generic=True)
    assert GenericValueFilter().rejects(c, line, LOC)


def test_entropy_measures() -> None:
    assert shannon_entropy("") == 0.0
    assert shannon_entropy("aaaa") == 0.0
    assert shannon_entropy("abcd") == pytest.approx(2.0)
    assert char_classes("aB3!") == 4
    assert looks_random(rnd(random.Random(4), AN, 24), 3.5)
    assert not looks_random("passwordpassword", 3.5)


@pytest.mark.parametrize(
    ("path", "doc"),
    [
        ("usr/share/doc/libfoo/README.Debian", True),
        ("usr/share/doc/libfoo/changelog.Debian.gz", True),
        ("usr/share/man/man1/foo.1.gz", True),
        ("opt/venv/lib/python3.11/site-packages/foo-1.0.dist-info/METADATA", True),
        ("src/foo/PKG-INFO", True),
        ("app/README.md", True),
        ("app/CHANGES.rst", True),
        ("usr/lib/node_modules/pkg/docs/usage.md", True),
        ("usr/lib/python3.11/site-packages/pkg/guide.txt", True),
        ("app/metadata.json", False),
        ("app/config/history", False),
        ("srv/app/settings.txt", False),
        ("etc/app/.env", False),
        ("app/docs.py", False),
    ],
)
def test_documentation_paths(path: str, doc: bool) -> None:
    assert is_documentation(path) is doc
