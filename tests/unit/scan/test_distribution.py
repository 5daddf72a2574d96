"""The distribution client's pure parts: references, loopback, credentials, platforms."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from vaultside.cli.main import cli
from vaultside.errors import InvalidRequestError, NotFoundError
from vaultside.scan.sources.distribution import RegistryClient
from vaultside.scan.sources.imageref import (
    Credentials,
    Reference,
    credentials_for,
    select_platform,
)


@pytest.mark.parametrize(
    ("text", "host", "repo", "ref"),
    [
        ("127.0.0.1:5000/app:1.0", "127.0.0.1:5000", "app", "1.0"),
        ("localhost/team/app", "localhost", "team/app", "latest"),
        ("ghcr.io/o/r@sha256:" + "a" * 64, "ghcr.io", "o/r", "sha256:" + "a" * 64),
        ("ghcr.io/o/r:v1@sha256:" + "b" * 64, "ghcr.io", "o/r", "sha256:" + "b" * 64),
        ("alpine", "registry-1.docker.io", "library/alpine", "latest"),
        ("docker.io/bitnami/redis:7", "registry-1.docker.io", "bitnami/redis", "7"),
        ("[::1]:5000/x:y", "[::1]:5000", "x", "y"),
    ],
)
def test_reference_parse(text: str, host: str, repo: str, ref: str) -> None:
    r = Reference.parse(text)
    assert (r.host, r.repository, r.ref) == (host, repo, ref)


@pytest.mark.parametrize(
    "text", ["host.io/Bad/Repo:1", "host.io/app:bad tag", "host.io/app@sha256:xyz", "host.io/:1"]
)
def test_reference_parse_rejects(text: str) -> None:
    with pytest.raises(InvalidRequestError):
        Reference.parse(text)


def test_plain_http_refused_off_loopback() -> None:
    with pytest.raises(InvalidRequestError, match="only allowed to loopback"):
        RegistryClient(Reference.parse("registry.example.com/app:1"), plain_http=True)
    res = CliRunner().invoke(cli, ["scan", "registry", "example.com/a:1", "--plain-http"])
    assert res.exit_code == 2 and "loopback" in res.output


def test_credentials_env_then_docker_config(tmp_path: Path) -> None:
    conf = tmp_path / "cfg"
    conf.mkdir()
    pw = "p" + base64.b64encode(b"fresh").decode()
    auth = base64.b64encode(f"me:{pw}".encode()).decode()
    (conf / "config.json").write_text(
        json.dumps({"auths": {"https://reg.example.com": {"auth": auth}}})
    )
    env = {"DOCKER_CONFIG": str(conf)}
    c = credentials_for("reg.example.com", env)
    assert c is not None and (c.username, c.password) == ("me", pw)
    assert pw not in repr(c)
    assert credentials_for("other.example.com", env) is None
    env_c = credentials_for(
        "reg.example.com",
        {**env, "VAULTSIDE_REGISTRY_USERNAME": "ci", "VAULTSIDE_REGISTRY_PASSWORD": "x"},
    )
    assert env_c == Credentials("ci", "x", env_c.origin if env_c else "")
    (conf / "config.json").write_text(json.dumps({"auths": {"reg.example.com": {"auth": "!!"}}}))
    with pytest.raises(InvalidRequestError, match="not base64"):
        credentials_for("reg.example.com", env)
    assert credentials_for("reg.example.com", {}, home=tmp_path / "nohome") is None


def test_select_platform() -> None:
    index = {
        "manifests": [
            {"digest": "sha256:a", "platform": {"os": "linux", "architecture": "amd64"}},
            {
                "digest": "sha256:b",
                "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
            },
            {"digest": "sha256:c", "platform": {"os": "unknown", "architecture": "unknown"}},
        ]
    }
    assert select_platform(index, "linux/amd64")["digest"] == "sha256:a"
    assert select_platform(index, "linux/arm64")["digest"] == "sha256:b"
    assert select_platform(index, "linux/arm64/v8")["digest"] == "sha256:b"
    with pytest.raises(NotFoundError, match=r"has: linux/amd64, linux/arm64/v8\)"):
        select_platform(index, "linux/s390x")


def test_registry_options_need_remote() -> None:
    res = CliRunner().invoke(cli, ["scan", "image", "app:1", "--platform", "linux/arm64"])
    assert res.exit_code == 2 and "need --remote" in res.output
