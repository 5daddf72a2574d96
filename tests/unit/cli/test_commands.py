"""CLI commands through click's runner against an in-process fake server on loopback."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from click.testing import CliRunner

from vaultside.cli.main import cli
from vaultside.cli.render import (
    EXIT_CONFLICT,
    EXIT_DEADLINE,
    EXIT_DENIED,
    EXIT_INVALID,
    EXIT_NOT_FOUND,
    EXIT_UNAVAILABLE,
)

TOKEN = "vs." + "b" * 40


class Store:
    """An in-memory server for the secret/policy/token routes the CLI calls."""

    def __init__(self) -> None:
        self.secrets: dict[str, list[dict[str, str]]] = {}
        self.policies: dict[str, list[dict[str, Any]]] = {}
        self.revoked: list[dict[str, str]] = []

    @staticmethod
    def err(status: int, msg: str) -> web.Response:
        return web.json_response({"errors": [msg], "request_id": "r"}, status=status)

    @staticmethod
    def meta(v: int) -> dict[str, Any]:
        return {
            "version": v,
            "created_time": "2026-01-01T00:00:00Z",
            "deletion_time": None,
            "destroyed": False,
        }

    async def handle(self, req: web.Request) -> web.StreamResponse:
        if req.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self.err(403, "permission denied")
        tail = req.match_info["tail"]
        body = await req.json() if req.can_read_body else {}
        if tail.startswith("secrets"):
            path = tail.removeprefix("secrets").lstrip("/")
            if req.query.get("list") == "true":
                keys = sorted(
                    {
                        k[len(path) :].lstrip("/").split("/")[0]
                        for k in self.secrets
                        if k.startswith(path)
                    }
                )
                return web.json_response({"keys": keys})
            if req.method == "PUT":
                cur = self.secrets.setdefault(path, [])
                if "cas" in body and body["cas"] != len(cur):
                    return self.err(409, "check-and-set mismatch")
                cur.append(body["data"])
                return web.json_response({"metadata": self.meta(len(cur))})
            if path.endswith(":versions"):
                vs = self.secrets.get(path.removesuffix(":versions"), [])
                return web.json_response({"versions": [self.meta(i + 1) for i in range(len(vs))]})
            if req.method == "GET":
                vs = self.secrets.get(path)
                if not vs:
                    return self.err(404, f"secret {path} not found")
                v = int(req.query.get("version", len(vs)))
                return web.json_response({"data": vs[v - 1], "metadata": self.meta(v)})
        if tail.startswith("sys/policies/"):
            name = tail.removeprefix("sys/policies/")
            if req.method == "PUT":
                self.policies[name] = body["rules"]
                return web.Response(status=204)
            if name not in self.policies:
                return self.err(404, f"no policy named {name}")
            return web.json_response({"name": name, "rules": self.policies[name]})
        if tail == "auth/token/create":
            return web.json_response(
                {
                    "auth": {
                        "token": "vs.child",
                        "accessor": "acc1",
                        "policies": body["policies"],
                        "expire_time": None,
                        "ttl": body.get("ttl"),
                        "renewable": True,
                    }
                }
            )
        if tail == "auth/token/revoke":
            self.revoked.append(body)
            return web.Response(status=204)
        return self.err(400, "unknown route")


@pytest.fixture
def server() -> Iterator[tuple[Store, str]]:
    """A real aiohttp server on a loopback port, run in a thread so the CLI can asyncio.run."""
    import asyncio

    store = Store()
    app = web.Application()
    app.router.add_route("*", "/v1/{tail:.*}", store.handle)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield store, f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def run(
    addr: str,
    args: list[str],
    stdin: str | None = None,
    token: str = TOKEN,
    retry_timeout: str = "",
) -> Any:
    env = {"VAULTSIDE_ADDR": addr, "VAULTSIDE_TOKEN": token, "VAULTSIDE_TOKEN_FILE": ""}
    env["VAULTSIDE_RETRY_TIMEOUT"] = retry_timeout
    return CliRunner().invoke(cli, args, input=stdin, env=env)


def test_put_get_field_from_file_and_stdin(server: tuple[Store, str], tmp_path: Path) -> None:
    store, addr = server
    pw = secrets.token_urlsafe(20)
    (tmp_path / "pw.txt").write_text(pw)
    api = secrets.token_hex(16)
    r = run(
        addr,
        ["secret", "put", "app/db", f"password=@{tmp_path / 'pw.txt'}", "user=app", "api=-"],
        stdin=api,
    )
    assert r.exit_code == 0, r.output
    assert "version 1" in r.output and pw not in r.output
    assert store.secrets["app/db"] == [{"password": pw, "user": "app", "api": api}]
    r = run(addr, ["secret", "get", "app/db", "--field", "password"])
    assert r.exit_code == 0 and r.output == pw  # raw, no newline off a terminal
    r = run(addr, ["secret", "get", "app/db", "--json"])
    assert json.loads(r.output)["data"]["api"] == api


def test_put_json_on_stdin_and_cas_conflict(server: tuple[Store, str]) -> None:
    _store, addr = server
    assert run(addr, ["secret", "put", "a/b"], stdin='{"k": "v"}').exit_code == 0
    r = run(addr, ["secret", "put", "a/b", "--cas", "0", "k=v2"])
    assert r.exit_code == EXIT_CONFLICT
    assert r.output == "Error: check-and-set mismatch\n"


def test_errors_one_line_with_distinct_codes(server: tuple[Store, str]) -> None:
    _store, addr = server
    r = run(addr, ["secret", "get", "missing/x"])
    assert (r.exit_code, r.output) == (EXIT_NOT_FOUND, "Error: secret missing/x not found\n")
    r = run(addr, ["secret", "get", "missing/x"], token="vs.wrong")
    assert (r.exit_code, r.output) == (EXIT_DENIED, "Error: permission denied\n")
    r = run(addr, ["secret", "get", "../sys/x"])
    assert r.exit_code == EXIT_INVALID and r.output.startswith("Error: invalid secret path")
    r = run("http://127.0.0.1:9", ["secret", "list"], retry_timeout="0")
    assert r.exit_code == EXIT_UNAVAILABLE and r.output.startswith("Error: cannot reach vaultside")
    assert "Traceback" not in r.output
    # by default the CLI retries an unreachable server (vaultside.retry), then exits 7
    r = run("http://127.0.0.1:9", ["secret", "list"], retry_timeout="0.5")
    assert r.exit_code == EXIT_DEADLINE, r.output
    assert r.output.startswith("Error: GET http://127.0.0.1:9/v1/secrets: still failing after")
    assert "cannot reach vaultside" in r.output and "Traceback" not in r.output


def test_list_and_versions(server: tuple[Store, str]) -> None:
    store, addr = server
    store.secrets = {"app/db": [{"a": "1"}, {"a": "2"}], "app/sub/x": [{"a": "1"}]}
    r = run(addr, ["secret", "list", "app", "--json"])
    assert json.loads(r.output) == ["db", "sub"]
    r = run(addr, ["secret", "versions", "app/db", "--json"])
    assert [v["version"] for v in json.loads(r.output)] == [1, 2]
    r = run(addr, ["secret", "get", "app/db", "--version", "1", "--field", "a"])
    assert r.output == "1"


def test_policy_write_read(server: tuple[Store, str], tmp_path: Path) -> None:
    store, addr = server
    f = tmp_path / "p.toml"
    f.write_text('[[rules]]\npath = "secrets/app/*"\ncapabilities = ["read"]\n')
    assert run(addr, ["policy", "write", "app-ro", str(f)]).exit_code == 0
    assert store.policies["app-ro"] == [{"path": "secrets/app/*", "capabilities": ["read"]}]
    r = run(addr, ["policy", "read", "app-ro", "--json"])
    assert json.loads(r.output)["rules"][0]["capabilities"] == ["read"]
    r = run(addr, ["policy", "read", "nope"])
    assert r.exit_code == EXIT_NOT_FOUND


def test_token_create_and_revoke_never_from_argv(server: tuple[Store, str]) -> None:
    store, addr = server
    r = run(addr, ["token", "create", "--policy", "app-ro", "--ttl", "3600", "--field", "token"])
    assert (r.exit_code, r.output) == (0, "vs.child")
    r = run(addr, ["token", "revoke", "vs.secret-in-argv"])
    assert r.exit_code == EXIT_INVALID and "stdin" in r.output
    assert store.revoked == []
    assert run(addr, ["token", "revoke", "-"], stdin="vs.child\n").exit_code == 0
    assert store.revoked == [{"token": "vs.child"}]


def test_human_get_prints_markup_like_values_verbatim(server: tuple[Store, str]) -> None:
    store, addr = server
    value = "[bold red]" + secrets.token_hex(4) + "[/] [link=x]"
    store.secrets["app/m"] = [{"k": value}]
    r = run(addr, ["secret", "get", "app/m"])
    assert r.exit_code == 0 and value in r.output
