"""The ``vaultside rotation`` CLI against a real server, and the webhook target end to end
(a real HTTP receiver on loopback that accepts ``set``/``test`` and refuses on demand)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.integration.services.vaultside_server import VaultsideServer, VaultsideServerFactory
from vaultside.client import VaultsideClient

pytestmark = pytest.mark.timeout(120)


def cli(
    server: VaultsideServer, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAULTSIDE_")}
    env |= {"VAULTSIDE_ADDR": server.addr, "VAULTSIDE_TOKEN": server.root_token}
    return subprocess.run(
        [sys.executable, "-m", "vaultside", "rotation", *args],
        env=env, input=stdin, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_cli_set_rotate_status_history(
    vaultside_server: VaultsideServerFactory, tmp_path: Path
) -> None:
    server = vaultside_server()
    policy = tmp_path / "policy.toml"
    policy.write_text(
        'every = "12h"\njitter = "5m"\n'
        '[generator]\nkind = "bytes"\nencoding = "hex"\nlength = 16\n'
        '[target]\nkind = "kv"\n'
    )
    res = cli(server, "set", "app/key", str(policy))
    assert res.returncode == 0, res.stderr
    res = cli(server, "set", "app/bad", "-", stdin='{"cron": "0 0 * *", "generator": '
              '{"kind": "token"}, "target": {"kind": "kv"}}')  # fmt: skip
    assert res.returncode == 2 and "cron:" in res.stderr, res.stderr
    assert cli(server, "list").stdout.split() == ["app/key"]
    res = cli(server, "rotate", "app/key")
    assert res.returncode == 0 and "version 1" in res.stdout, res.stderr
    status = json.loads(cli(server, "status", "app/key", "--json").stdout)
    assert status["state"]["last_result"] == "ok" and status["state"]["version"] == 1
    assert "last result" in cli(server, "status", "app/key").stdout
    runs = json.loads(cli(server, "history", "app/key", "--json").stdout)
    assert [r["result"] for r in runs] == ["ok"]
    assert json.loads(cli(server, "show", "app/key").stdout)["jitter"] == 300
    assert cli(server, "delete", "app/key").returncode == 0
    assert cli(server, "show", "app/key").returncode == 4


async def test_webhook_target(vaultside_server: VaultsideServerFactory) -> None:
    seen: list[dict[str, Any]] = []
    refuse: set[str] = set()

    async def hook(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append(body)
        return web.Response(status=500 if body["step"] in refuse else 204)

    app = web.Application()
    app.router.add_post("/rotate", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    # The operator declares the webhook; the policy only names it.
    targets = {
        "svc-hook": {
            "kind": "webhook",
            "url": f"http://127.0.0.1:{port}/rotate",
            "allow_http": True,
        }
    }
    server = vaultside_server(VAULTSIDE_ROTATION__TARGETS=json.dumps(targets))
    client = VaultsideClient(server.addr, server.root_token)
    try:
        await client.write_secret("svc/hook", {"password": "before"})
        policy = {
            "every": "1d",
            "generator": {"kind": "password", "length": 24},
            "target": {"kind": "webhook", "name": "svc-hook"},
        }
        await client.request("PUT", "rotation/policies/svc/hook", body=policy)
        _, body, _ = await client.request("POST", "rotation/rotate/svc/hook")
        assert body["run"]["result"] == "ok"
        new = (await client.read_secret("svc/hook")).data["password"]  # type: ignore[union-attr]
        assert [s["step"] for s in seen] == ["set", "test", "finish"]
        assert seen[0]["pending"]["password"] == new and seen[0]["current"]["password"] == "before"
        seen.clear()
        refuse.add("test")
        _, body, _ = await client.request("POST", "rotation/rotate/svc/hook")
        assert (
            body["run"]["result"] == "failed"
            and body["run"]["error"] == "test webhook answered HTTP 500"
        )
        assert [s["step"] for s in seen] == ["set", "test", "rollback"]
        assert (await client.read_secret("svc/hook")).data["password"] == new  # type: ignore[union-attr]
        audit = (server.data_dir / "audit.log").read_text()
        assert '"operation":"rotation.rotate"' in audit.replace(" ", "")
        assert new not in audit and new not in server.output()
    finally:
        await client.close()
        await runner.cleanup()
