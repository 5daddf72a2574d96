"""Reporters (SARIF validated against the 2.1.0 schema), redaction, baseline, allowlist, CLI."""

from __future__ import annotations

import json
import random
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from tests.unit.scan.credgen import AN, github_token, rnd
from tests.unit.scan.imagegen import ImageSpec, docker_save
from vaultside.cli.main import cli
from vaultside.scan.base import Finding, Location, Secret, Severity
from vaultside.scan.detectors.known import KnownValueIndex
from vaultside.scan.reporters.json import JsonReporter
from vaultside.scan.reporters.sarif import SarifReporter
from vaultside.scan.reporters.table import TableReporter
from vaultside.scan.scanner import Allowlist, Scanner, load_baseline, write_baseline
from vaultside.scan.sources.archive import ImageArchiveSource
from vaultside.scan.sources.path import PathSource

SCHEMA = json.loads((Path(__file__).parent / "sarif-schema-2.1.0.json").read_text())


@pytest.fixture
def secrets_tree(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    rng = random.Random(99)
    vals = {"gh": github_token(rng), "pw": rnd(rng, AN, 22), "gl": "glpat-" + rnd(rng, AN, 20)}
    root = tmp_path / "tree"
    (root / "cfg").mkdir(parents=True)
    (root / "cfg" / "app.env").write_text(f"GITHUB_TOKEN={vals['gh']}\nDB_PASSWORD={vals['pw']}\n")
    (root / "notes.md").write_text(f"# notes\n\nuse {vals['gl']} for CI\n")
    return root, vals


def findings_for(root: Path, **kw: object) -> list[Finding]:
    return Scanner(**kw).scan([PathSource(root)]).findings  # type: ignore[arg-type]


def test_sarif_validates_against_the_schema(secrets_tree: tuple[Path, dict[str, str]]) -> None:
    root, vals = secrets_tree
    findings = findings_for(root)
    posture = Finding(
        "posture-privileged",
        "privileged container",
        Severity.CRITICAL,
        Location("container", "web", "container/HostConfig"),
        practice="CIS Docker 5.5",
        advice="drop --privileged",
    ).with_fingerprint()
    text = SarifReporter().render([*findings, posture], reveal=True)
    doc = json.loads(text)
    jsonschema.validate(doc, SCHEMA)
    assert len(doc["runs"][0]["results"]) == 4
    for v in vals.values():
        assert v not in text  # never revealed, even when asked


def test_sarif_schema_check_can_fail() -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"version": "2.1.0", "runs": [{"results": []}]}, SCHEMA)


def test_table_and_json_redact_unless_reveal(secrets_tree: tuple[Path, dict[str, str]]) -> None:
    root, vals = secrets_tree
    findings = findings_for(root)
    for reporter in (TableReporter(), JsonReporter()):
        text = reporter.render(findings)
        assert all(v not in text for v in vals.values())
        revealed = reporter.render(findings, reveal=True)
        assert all(v in revealed for v in vals.values())
    red = json.loads(JsonReporter().render(findings))["findings"][0]
    assert red["length"] > 0 and "fp " in red["redacted"]


def test_secret_repr_never_shows_the_value() -> None:
    s = Secret("hunter2-but-longer")
    assert "hunter2" not in repr(s) and "hunter2" not in str(s)
    f = Finding("r", "d", Severity.LOW, Location("path", "t", "p"), secret=s)
    assert "hunter2" not in repr(f)


def test_baseline_fingerprint_survives_line_moves_and_holds_no_secret(
    tmp_path: Path, secrets_tree: tuple[Path, dict[str, str]]
) -> None:
    root, vals = secrets_tree
    before = findings_for(root)
    base = tmp_path / "baseline.json"
    write_baseline(base, before)
    text = base.read_text()
    assert all(v not in text for v in vals.values())
    env = root / "cfg" / "app.env"
    env.write_text("# moved down\n\n\n" + env.read_text())
    after = findings_for(root)
    assert {f.fingerprint for f in after} == {f.fingerprint for f in before}
    assert [f.location.line for f in after if f.location.path == "cfg/app.env"] == [4, 5]
    assert findings_for(root, baseline=load_baseline(base)) == []
    # a new secret is still reported
    new = "glpat-" + rnd(random.Random(3), AN, 20)
    (root / "new.txt").write_text(f"t={new}\n")
    [f] = findings_for(root, baseline=load_baseline(base))
    assert f.secret is not None and f.secret.reveal() == new


def test_allowlist(tmp_path: Path, secrets_tree: tuple[Path, dict[str, str]]) -> None:
    root, _ = secrets_tree
    allow = tmp_path / "allow.toml"
    allow.write_text('rules = ["generic-secret-assignment"]\npaths = ["notes.md"]\n')
    result = Scanner(allowlist=Allowlist.load(allow)).scan([PathSource(root)])
    assert [f.rule_id for f in result.findings] == ["github-token"]
    assert result.suppressed == 2


def run(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(cli, ["scan", *args])
    return res.exit_code, res.stdout, res.stderr


def test_cli_path_exit_codes_and_formats(
    tmp_path: Path, secrets_tree: tuple[Path, dict[str, str]]
) -> None:
    root, vals = secrets_tree
    code, out, _ = run("path", str(root))
    assert code == 1 and "github-token" in out and vals["gh"] not in out
    code, out, _ = run("path", str(root), "--fail-on", "critical", "--format", "json")
    assert code == 1 and len(json.loads(out)["findings"]) == 3
    medium_only = tmp_path / "medium.env"
    medium_only.write_text(f"DB_PASSWORD={vals['pw']}\n")
    code, out, _ = run("path", str(medium_only), "--fail-on", "high")
    assert code == 0 and "generic-secret-assignment" in out
    code, out, _ = run("path", str(medium_only), "--fail-on", "medium")
    assert code == 1
    code, out, _ = run("path", str(root), "--fail-on", "none", "--format", "sarif")
    assert code == 0
    jsonschema.validate(json.loads(out), SCHEMA)
    code, out, _ = run("path", str(root), "--reveal", "--format", "json")
    assert vals["gh"] in out
    base = tmp_path / "b.json"
    code, _, _ = run("path", str(root), "--write-baseline", str(base))
    assert code == 0
    code, out, _ = run("path", str(root), "--baseline", str(base))
    assert code == 0 and "no findings" in out


def test_cli_known_index_file(tmp_path: Path) -> None:
    value = "managed value " + rnd(random.Random(12), AN, 16)
    idx = KnownValueIndex()
    idx.add("app/db", "password", 2, "current", value)
    index_file = tmp_path / "index.json"
    index_file.write_text(json.dumps(idx.to_json()))
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "log.txt").write_text(f"started with {value} ok\n")
    code, out, _ = run(
        "path", str(tmp_path / "d"), "--known-index", str(index_file), "--format", "json"
    )
    assert code == 1
    [f] = json.loads(out)["findings"]
    assert f["known"] == {
        "path": "app/db",
        "field": "password",
        "version": 2,
        "status": "current",
        "encoding": "raw",
    }
    assert value not in out


def test_cli_corrupt_and_truncated_archives(tmp_path: Path) -> None:
    img = tmp_path / "img.tar"
    docker_save(ImageSpec(layers=[("COPY a /", {"a.txt": b"x" * 50_000})]), img)
    cut = tmp_path / "cut.tar"
    cut.write_bytes(img.read_bytes()[:30_000])
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"\x1f\x8b\x08\x00" + bytes(range(256)) * 4)
    for bad in (cut, junk):
        res = CliRunner().invoke(cli, ["scan", "archive", str(bad)])
        assert res.exit_code == 2, res.output
        assert res.exception is None or isinstance(res.exception, SystemExit)
        assert "Error:" in res.stderr and "Traceback" not in res.stderr
    code, _out, _ = run("archive", str(img))
    assert code == 0


def test_cli_bad_rules_file(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text("[[rule]]\nid = 'x'\nregex = '('\n")
    (tmp_path / "d").mkdir()
    code, _, err = run("path", str(tmp_path / "d"), "--rules", str(rules))
    assert code == 2 and "rule 'x' is invalid" in err


def test_archive_source_from_image_archive(tmp_path: Path) -> None:
    token = "glpat-" + rnd(random.Random(21), AN, 20)
    img = tmp_path / "img.tar"
    docker_save(ImageSpec(layers=[("COPY a /", {"etc/a.conf": f"t={token}\n".encode()})]), img)
    [f] = Scanner().scan([ImageArchiveSource(img)]).findings
    assert f.location.created_by == "COPY a /"


def test_table_in_a_pipe_has_no_box_drawing(secrets_tree: tuple[Path, dict[str, str]]) -> None:
    root, _ = secrets_tree
    out = TableReporter().render(findings_for(root))  # stdout is captured: not a terminal
    assert not any("\u2500" <= ch <= "\u257f" for ch in out), out
    assert out.splitlines()[0].split()[:2] == ["severity", "rule"]
