"""The ``vaultside`` CLI end to end, as subprocesses against a real ``vaultside serve``."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from .services.vaultside_server import VaultsideServer, VaultsideServerFactory

EXIT_INVALID, EXIT_DENIED, EXIT_NOT_FOUND = 2, 3, 4


def vs(
    server: VaultsideServer, *args: str, token: str | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m vaultside ARGS`` with the server's address and a token in the env."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAULTSIDE_")}
    env["VAULTSIDE_ADDR"] = server.addr
    env["VAULTSIDE_TOKEN"] = token if token is not None else server.root_token
    return subprocess.run(
        [sys.executable, "-m", "vaultside", *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"rc={proc.returncode} stderr={proc.stderr!r}"
    return proc.stdout


def one_error_line(proc: subprocess.CompletedProcess[str], code: int) -> str:
    """Assert a failure printed exactly one ``Error: ...`` line and no traceback."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    return lines[0]


@pytest.fixture
def server(vaultside_server: VaultsideServerFactory) -> VaultsideServer:
    return vaultside_server()


def test_secret_lifecycle(server: VaultsideServer, tmp_path: Path) -> None:
    pw = secrets.token_urlsafe(24)
    pw_file = tmp_path / "pw.txt"
    pw_file.write_text(pw)
    api_key = secrets.token_hex(20)

    out = ok(vs(server, "secret", "put", "app/db", f"password=@{pw_file}", "user=app"))
    assert "version 1" in out and pw not in out
    ok(vs(server, "secret", "put", "app/db", "password=-", "user=app", stdin=api_key))
    ok(vs(server, "secret", "put", "app/api", stdin=json.dumps({"key": api_key})))

    assert ok(vs(server, "secret", "get", "app/db", "--field", "password")) == api_key
    assert ok(vs(server, "secret", "get", "app/db", "--version", "1", "--field", "password")) == pw
    got = json.loads(ok(vs(server, "secret", "get", "app/db", "--json")))
    assert got["data"] == {"password": api_key, "user": "app"}
    assert got["metadata"]["version"] == 2
    assert pw in ok(vs(server, "secret", "get", "app/db", "--version", "1"))  # rich table

    assert json.loads(ok(vs(server, "secret", "list", "app", "--json"))) == ["api", "db"]
    assert ok(vs(server, "secret", "list")).split() == ["app/"]
    versions = json.loads(ok(vs(server, "secret", "versions", "app/db", "--json")))
    assert [v["version"] for v in versions] == [1, 2]

    ok(vs(server, "secret", "delete", "app/db"))
    line = one_error_line(vs(server, "secret", "get", "app/db"), EXIT_NOT_FOUND)
    assert api_key not in line
    ok(vs(server, "secret", "undelete", "app/db", "--versions", "2"))
    assert ok(vs(server, "secret", "get", "app/db", "--field", "password")) == api_key

    ok(vs(server, "secret", "destroy", "app/db", "--versions", "1"))
    one_error_line(vs(server, "secret", "get", "app/db", "--version", "1"), EXIT_NOT_FOUND)
    versions = json.loads(ok(vs(server, "secret", "versions", "app/db", "--json")))
    assert {v["version"]: v["destroyed"] for v in versions} == {1: True, 2: False}

    meta = json.loads(
        ok(vs(server, "secret", "metadata", "app/db", "--max-versions", "5", "--json"))
    )
    assert meta["max_versions"] == 5 and meta["current_version"] == 2
    assert "app/db" in ok(vs(server, "secret", "metadata", "app/db"))


def test_tokens_and_policies(server: VaultsideServer, tmp_path: Path) -> None:
    value = secrets.token_urlsafe(18)
    ok(vs(server, "secret", "put", "app/db", "password=-", stdin=value))
    policy = {"rules": [{"path": "secrets/app/*", "capabilities": ["read", "list"]}]}
    ok(vs(server, "policy", "write", "app-ro", "-", stdin=json.dumps(policy)))
    toml_file = tmp_path / "ops.toml"
    toml_file.write_text('[[rules]]\npath = "secrets/ops/**"\ncapabilities = ["read"]\n')
    ok(vs(server, "policy", "write", "ops-ro", str(toml_file)))
    read = json.loads(ok(vs(server, "policy", "read", "app-ro", "--json")))
    assert [(r["path"], set(r["capabilities"])) for r in read["rules"]] == [
        ("secrets/app/*", {"read", "list"})
    ]
    assert {"app-ro", "ops-ro"} <= set(json.loads(ok(vs(server, "policy", "list", "--json"))))

    token = ok(vs(server, "token", "create", "--policy", "app-ro", "--ttl", "1h",
                  "--field", "token"))  # fmt: skip
    assert token.startswith("vs.")
    assert ok(vs(server, "secret", "get", "app/db", "--field", "password", token=token)) == value
    line = one_error_line(
        vs(server, "secret", "put", "app/db", "password=x", token=token), EXIT_DENIED
    )
    assert token not in line
    info = json.loads(ok(vs(server, "token", "lookup", "--json", token=token)))
    assert "app-ro" in info["policies"]
    accessor = info["accessor"]
    by_accessor = json.loads(ok(vs(server, "token", "lookup", "--accessor", accessor, "--json")))
    assert by_accessor["accessor"] == accessor
    by_stdin = json.loads(ok(vs(server, "token", "lookup", "-", "--json", stdin=token + "\n")))
    assert by_stdin["accessor"] == accessor

    renewed = json.loads(
        ok(vs(server, "token", "renew", "--accessor", accessor, "--increment", "2h", "--json"))
    )
    assert renewed["accessor"] == accessor
    when = datetime.fromisoformat
    assert when(renewed["expire_time"]) > when(info["expire_time"])
    assert "token" not in renewed  # only create ever shows a token
    ok(vs(server, "token", "revoke", "-", stdin=token))
    deadline = time.monotonic() + 3  # revocation is immediate in-process; allow the 1 s cache
    while True:
        proc = vs(server, "secret", "get", "app/db", token=token)
        if proc.returncode != 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    one_error_line(proc, EXIT_DENIED)


def test_error_lines_and_exit_codes(server: VaultsideServer) -> None:
    one_error_line(vs(server, "secret", "get", "no/such"), EXIT_NOT_FOUND)
    one_error_line(vs(server, "secret", "get", "no/such", token="vs." + "x" * 40), EXIT_DENIED)
    one_error_line(vs(server, "policy", "read", "no-such-policy"), EXIT_NOT_FOUND)
    # rejected by the CLI before any request
    one_error_line(vs(server, "secret", "put", "app/db", "novalue"), EXIT_INVALID)
    one_error_line(vs(server, "secret", "get", "../sys/policies/root"), EXIT_INVALID)
    one_error_line(vs(server, "token", "revoke", "vs.in-argv"), EXIT_INVALID)
    one_error_line(vs(server, "policy", "write", "p", "-", stdin="{{nope"), EXIT_INVALID)
    # rejected by the server (400 mapped back)
    one_error_line(vs(server, "secret", "put", "bad path!", "k=v"), EXIT_INVALID)
    one_error_line(vs(server, "secret", "put", "app/x", "bad field!=v"), EXIT_INVALID)
    one_error_line(
        vs(server, "policy", "write", "p", "-",
           stdin='{"rules": [{"path": "secrets/*", "capabilities": ["fly"]}]}'),
        EXIT_INVALID,
    )  # fmt: skip
    one_error_line(vs(server, "secret", "put", "app/cas", "--cas", "3", "k=v"), 5)
