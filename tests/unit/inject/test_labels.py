"""Reverse-DNS label names, with the first releases' ``vaultside.*`` names as aliases."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from vaultside.inject import labels
from vaultside.inject.docker_api import DockerEngine
from vaultside.inject.roles import load_roles

from .conftest import safe_container

CID = "d" * 64


def _container_on_disk(root: Path, cid: str, container_labels: dict[str, str]) -> None:
    base = root / "containers" / cid
    base.mkdir(parents=True)
    config = {"Name": "/app", "Config": {"User": "1000", "Labels": container_labels}}
    (base / "config.v2.json").write_text(json.dumps(config))
    (base / "hostconfig.json").write_text("{}")


def test_new_names_pass_through_unchanged() -> None:
    got = labels.canonical_labels({labels.ROLE: "web", "team": "a"}, owner="c1")
    assert got == {"io.vaultside.role": "web", "team": "a"}


async def test_deprecated_alias_is_renamed_and_warned_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _container_on_disk(
        tmp_path, CID, {"vaultside.role": "web", "vaultside.on-rotate": "signal:HUP"}
    )
    engine = DockerEngine("unix:///nonexistent.sock", data_root=tmp_path)
    with caplog.at_level(logging.WARNING, logger="vaultside.inject.labels"):
        facts = await engine.facts(CID)
        again = await engine.facts(CID)
    assert facts.labels == {"io.vaultside.role": "web", "io.vaultside.on-rotate": "signal:HUP"}
    assert again.labels == facts.labels
    warned = [r for r in caplog.records if "deprecated label" in r.getMessage()]
    assert len(warned) == 1  # once per container, not per mount


def test_new_name_wins_over_alias() -> None:
    got = labels.canonical_labels(
        {"vaultside.role": "admin", "io.vaultside.role": "web"}, owner="c2"
    )
    assert got == {"io.vaultside.role": "web"}


def test_roles_file_with_old_name_matches_container_with_new_name(tmp_path: Path) -> None:
    roles = tmp_path / "roles.toml"
    roles.write_text('[roles.web]\nlabels = { "vaultside.role" = "frontend" }\n')
    book = load_roles(roles)
    facts = safe_container(labels={"io.vaultside.role": "frontend"})
    assert book.role_for(facts).name == "web"
