"""The CLI convention against a real ``vaultside serve``: --format and VAULTSIDE_FORMAT, plain
tables in pipes, the client environment (timeout, retries, an address without a scheme) and
shell completion, each through ``python -m vaultside`` as a user runs it."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys

import pytest

from .services.vaultside_server import VaultsideServer, VaultsideServerFactory
from .test_cli import ok, one_error_line

BOX = re.compile("[\u2500-\u257f]")


def run(server: VaultsideServer, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m vaultside ARGS`` with the server's address, the root token and ``env``."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("VAULTSIDE_")}
    full |= {"VAULTSIDE_ADDR": server.addr, "VAULTSIDE_TOKEN": server.root_token, **env}
    return subprocess.run(
        [sys.executable, "-m", "vaultside", *args],
        input="",
        capture_output=True,
        text=True,
        env=full,
        timeout=60,
        check=False,
    )


@pytest.fixture
def server(vaultside_server: VaultsideServerFactory) -> VaultsideServer:
    return vaultside_server()


def test_format_env_alias_and_plain_tables(server: VaultsideServer) -> None:
    value = secrets.token_urlsafe(16)
    ok(run(server, "secret", "put", "app/db", f"password={value}", "user=app"))

    by_env = json.loads(ok(run(server, "secret", "get", "app/db", VAULTSIDE_FORMAT="json")))
    assert by_env["data"] == {"password": value, "user": "app"}
    assert json.loads(ok(run(server, "secret", "get", "app/db", "--json"))) == by_env
    assert json.loads(ok(run(server, "secret", "get", "app/db", "--format", "json"))) == by_env

    table = ok(run(server, "secret", "get", "app/db", "--format", "table", VAULTSIDE_FORMAT="json"))
    assert not BOX.search(table), table
    lines = table.splitlines()
    assert lines[0] == "app/db (version 1)"
    assert lines[1].split() == ["KEY", "VALUE"]
    assert lines[2].split() == ["password", value] and lines[3].split() == ["user", "app"]

    versions = ok(run(server, "secret", "versions", "app/db"))
    assert not BOX.search(versions)
    assert versions.splitlines()[1].split()[:2] == ["VERSION", "CREATED"]
    assert json.loads(ok(run(server, "secret", "list", VAULTSIDE_FORMAT="json"))) == ["app/"]
    status = json.loads(ok(run(server, "operator", "seal-status", "--format", "json")))
    assert status["sealed"] is False


def test_client_environment(server: VaultsideServer) -> None:
    env = {"VAULTSIDE_CLIENT_TIMEOUT": "5s", "VAULTSIDE_MAX_RETRIES": "2"}
    assert json.loads(ok(run(server, "policy", "list", "--format", "json", **env)))

    no_scheme = server.addr.removeprefix("http://")
    line = one_error_line(run(server, "secret", "list", VAULTSIDE_ADDR=no_scheme), 2)
    assert line == (
        f"Error: VAULTSIDE_ADDR {no_scheme} has no scheme: use http://{no_scheme} or"
        f" https://{no_scheme}"
    )
    line = one_error_line(run(server, "secret", "list", VAULTSIDE_CLIENT_TIMEOUT="later"), 2)
    assert "VAULTSIDE_CLIENT_TIMEOUT" in line
    line = one_error_line(run(server, "secret", "list", VAULTSIDE_MAX_RETRIES="-1"), 2)
    assert "VAULTSIDE_MAX_RETRIES" in line


def test_shell_completion_through_the_installed_entry_point(server: VaultsideServer) -> None:
    script = ok(run(server, "completion", "bash"))
    assert "_VAULTSIDE_COMPLETE=bash_complete" in script
    words = run(
        server,
        _VAULTSIDE_COMPLETE="bash_complete",
        COMP_WORDS="vaultside secret get --fo",
        COMP_CWORD="3",
    )
    assert "plain,--format" in ok(words).splitlines()
