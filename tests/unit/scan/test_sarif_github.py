"""SARIF ready for GitHub code scanning: the SARIF multitool's GitHub rules, valid URIs.

The multitool (``@microsoft/sarif-multitool-linux`` from npm) is installed by
``make unit``/``make test`` into ``.tools/sarif``; without it these checks skip, except under
``CI=true`` where that is a failure.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlsplit

import jsonschema
import pytest

from tests.unit.scan.credgen import AN, github_token, rnd
from tests.unit.scan.imagegen import ImageSpec, docker_save
from vaultside.scan.base import Finding, Location, Severity
from vaultside.scan.reporters.sarif import SarifReporter
from vaultside.scan.scanner import Scanner
from vaultside.scan.sources.archive import ImageArchiveSource
from vaultside.scan.sources.path import PathSource

ROOT = Path(__file__).resolve().parents[3]
MULTITOOL = ROOT / ".tools/sarif/node_modules/@microsoft/sarif-multitool-linux/Sarif.Multitool"
SCHEMA = json.loads((Path(__file__).parent / "sarif-schema-2.1.0.json").read_text())
ODD = "app/odd dir/[x]%#?.env"


@pytest.fixture
def sarif(tmp_path: Path) -> dict[str, object]:
    rng = random.Random(11)
    files = {
        "app/.env": f"GITHUB_TOKEN={github_token(rng)}\n".encode(),
        ODD: f"GITLAB_TOKEN=glpat-{rnd(rng, AN, 20)}\n".encode(),
    }
    archive = tmp_path / "img.tar"
    docker_save(ImageSpec([("COPY . /", files)], tag="myapp:1.0"), archive)
    tree = tmp_path / "repo"
    (tree / "cfg").mkdir(parents=True)
    (tree / "cfg" / "app.env").write_text(f"GITHUB_TOKEN={github_token(rng)}\n")
    findings = Scanner().scan([ImageArchiveSource(archive), PathSource(tree)]).findings
    posture = Finding(
        "posture-privileged",
        "privileged container",
        Severity.CRITICAL,
        Location("container", "web", "container/HostConfig"),
        practice="CIS Docker 5.5",
        advice="drop --privileged",
    ).with_fingerprint()
    return json.loads(SarifReporter().render([*findings, posture]))


def test_uris_are_relative_references_under_a_base_per_target(sarif: dict[str, object]) -> None:
    jsonschema.validate(sarif, SCHEMA)
    run = sarif["runs"][0]  # type: ignore[index]
    bases = run["originalUriBaseIds"]
    by_target: dict[str, str] = {}
    for res in run["results"]:
        art = res["locations"][0]["physicalLocation"]["artifactLocation"]
        parts = urlsplit(art["uri"])
        assert (parts.scheme, parts.netloc, parts.query, parts.fragment) == ("", "", "", "")
        assert art["uriBaseId"] in bases
        by_target.setdefault(res["properties"]["target"], art["uriBaseId"])
        if res["properties"]["target"] == "myapp:1.0":
            assert unquote(art["uri"]) in ("app/.env", ODD, "config/history", "config/Env")
    assert len(set(by_target.values())) == len(by_target) == 3
    assert bases["%SRCROOT%"]["uri"].startswith("file:///")
    assert "myapp:1.0" in bases[by_target["myapp:1.0"]]["description"]["text"]
    driver = run["tool"]["driver"]
    assert driver["informationUri"].startswith("https://")
    for rule in driver["rules"]:
        assert rule["fullDescription"]["text"] and rule["help"]["text"]


def test_github_rules_of_the_sarif_multitool(sarif: dict[str, object], tmp_path: Path) -> None:
    if not MULTITOOL.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{MULTITOOL} missing: run make unit")
        pytest.skip("SARIF multitool not installed (make unit installs it)")
    log = tmp_path / "vaultside.sarif"
    log.write_text(json.dumps(sarif))
    out = tmp_path / "validation.sarif"
    res = subprocess.run(
        [str(MULTITOOL), "validate", "--level", "Error;Warning", "--rule-kind", "Sarif;Gh",
         str(log), "-o", str(out)],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "DOTNET_CLI_TELEMETRY_OPTOUT": "1"},
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    problems = [
        f"{r['ruleId']}: {r['message'].get('text', r['message'])}"
        for run in json.loads(out.read_text())["runs"]
        for r in run.get("results", [])
        if r.get("level", "warning") in ("error", "warning")
    ]
    assert problems == [], "\n".join(problems)
