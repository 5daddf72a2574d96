"""Issue 11, findings 1-3, replayed against a real ``vaultside serve``: the server never runs
code, calls out, reads or writes on behalf of a caller beyond that caller's own rights.

Every value and canary is generated here, at test time.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.services.vaultside_server import VaultsideServerFactory

from .support import api, audit_records, errors, listener, ok, token_with

pytestmark = pytest.mark.timeout(240)


def _policy(target: dict[str, object], every: str = "1d") -> dict[str, object]:
    return {"every": every, "generator": {"kind": "password", "length": 24}, "target": target}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _refused_put(records: list[dict[str, Any]], path: str, status: int, field: str) -> bool:
    return any(
        r["operation"] == "PUT"
        and r["path"] == f"/v1/rotation/policies/{path}"
        and r["status"] == status
        and field in (r.get("error") or "")
        for r in records
    )


# -- finding 1: remote code execution ------------------------------------------------------


def test_finding1_api_cannot_set_argv_and_nothing_runs(
    vaultside_server: VaultsideServerFactory, tmp_path: Path
) -> None:
    ran = tmp_path / "ran"
    server = vaultside_server()
    ok(server, "PUT", "secrets/other/db", {"data": {"password": secrets.token_urlsafe(24)}})
    auth = token_with(
        server,
        "rotation-other",
        [{"path": "rotation/other/*", "capabilities": ["read", "update", "rotate"]}],
    )
    token = auth["token"]
    assert api(server, "GET", "secrets/other/db", token=token)[0] == 403
    shell = f"cat > {ran}; env >> {ran}; cat {server.data_dir}/vaultside.key >> {ran}"
    attack = _policy({"kind": "command", "argv": ["/bin/sh", "-c", shell]})

    status, doc = api(server, "PUT", "rotation/policies/other/db", attack, token)
    assert status == 400, (status, doc)
    assert "target.argv: not accepted through the API" in errors(doc)
    status, doc = api(server, "POST", "rotation/rotate/other/db", token=token)
    assert status == 404, (status, doc)
    assert api(server, "GET", "rotation/policies/other/db")[0] == 404  # nothing to schedule
    assert not ran.exists()
    # Even root cannot put argv through the API.
    status, doc = api(server, "PUT", "rotation/policies/other/db", attack)
    assert status == 400 and "target.argv" in errors(doc)
    assert not ran.exists()
    assert _refused_put(audit_records(server), "other/db", 400, "target.argv")


def test_finding1_declared_command_needs_sudo_is_pinned_and_gets_no_server_env(
    vaultside_server: VaultsideServerFactory, tmp_path: Path
) -> None:
    out, env_out = tmp_path / "stdin.json", tmp_path / "env.txt"
    script = tmp_path / "hook.sh"
    script.write_text(f"#!/bin/sh\n/bin/cat > {out}\n/usr/bin/env > {env_out}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    canary = "canary-" + secrets.token_hex(8)
    targets = {
        "hook": {"kind": "command", "argv": [str(script)], "sha256": _sha256(script),
                 "env": ["ALLOWED_VAR"]},
    }  # fmt: skip
    server = vaultside_server(
        VAULTSIDE_ROTATION__TARGETS=json.dumps(targets), SERVER_CANARY=canary, ALLOWED_VAR="yes"
    )
    ok(server, "PUT", "secrets/other/db", {"data": {"password": "before"}})
    # Everything on the secret and the policy, but not sudo on the target: refused.
    rules = [
        {"path": "rotation/other/*", "capabilities": ["read", "update", "rotate"]},
        {"path": "secrets/other/*", "capabilities": ["create", "update", "read"]},
    ]
    token = token_with(server, "no-sudo", rules)["token"]
    policy = _policy({"kind": "command", "name": "hook"})
    status, doc = api(server, "PUT", "rotation/policies/other/db", policy, token)
    assert status == 403, (status, doc)
    assert "sudo on rotation/targets/hook" in errors(doc)
    assert _refused_put(audit_records(server), "other/db", 403, "sudo on rotation/targets/hook")

    # With sudo on the target (root here) it runs: the value on stdin, only allowed env.
    ok(server, "PUT", "rotation/policies/other/db", policy)
    run = ok(server, "POST", "rotation/rotate/other/db")["run"]
    assert run["result"] == "ok", run
    assert json.loads(out.read_text())["current"] == {"password": "before"}
    env = dict(line.split("=", 1) for line in env_out.read_text().splitlines() if "=" in line)
    assert env.get("ALLOWED_VAR") == "yes" and env["VAULTSIDE_ROTATION_STEP"] == "finish"
    assert canary not in env_out.read_text()
    assert not any(k.startswith("VAULTSIDE_") and "ROTATION" not in k for k in env)
    assert "HOME" not in env and "PATH" not in env

    # The pin is checked before every run: a changed program is refused and never runs.
    out.unlink()
    script.write_text(script.read_text() + "/bin/cat /dev/null\n")
    run = ok(server, "POST", "rotation/rotate/other/db")["run"]
    assert run["result"] == "failed" and "does not match its pinned sha256" in run["error"], run
    assert not out.exists()


# -- finding 2: exfiltration without reading rights -----------------------------------------


def test_finding2_update_only_token_cannot_send_the_value_to_its_listener(
    vaultside_server: VaultsideServerFactory,
) -> None:
    with listener() as hook:
        targets = {"ops-hook": {"kind": "webhook", "url": hook.url("/ops"), "allow_http": True}}
        server = vaultside_server(VAULTSIDE_ROTATION__TARGETS=json.dumps(targets))
        ok(server, "PUT", "secrets/app-x/db", {"data": {"password": secrets.token_urlsafe(24)}})
        token = token_with(
            server, "app-x-update", [{"path": "rotation/app-x/*", "capabilities": ["update"]}]
        )["token"]
        attack = _policy({"kind": "webhook", "url": hook.url("/steal")}, every="60")
        status, doc = api(server, "PUT", "rotation/policies/app-x/db", attack, token)
        assert status == 400, (status, doc)
        assert "target.url: not accepted through the API" in errors(doc)
        # Naming the operator's webhook does not work either: no rights on the secret.
        named = _policy({"kind": "webhook", "name": "ops-hook"}, every="60")
        status, doc = api(server, "PUT", "rotation/policies/app-x/db", named, token)
        assert status == 403, (status, doc)
        assert api(server, "POST", "rotation/rotate/app-x/db", token=token)[0] == 403
        # Nothing is stored, so the scheduler has nothing to send anywhere.
        assert api(server, "GET", "rotation/policies/app-x/db")[0] == 404
        assert hook.seen == []
        assert _refused_put(audit_records(server), "app-x/db", 400, "target.url")


def test_finding2_webhook_follows_no_redirect(vaultside_server: VaultsideServerFactory) -> None:
    with listener({"/a": (307, {"Location": "/b"})}) as hook:
        targets = {"redir": {"kind": "webhook", "url": hook.url("/a"), "allow_http": True}}
        server = vaultside_server(VAULTSIDE_ROTATION__TARGETS=json.dumps(targets))
        ok(server, "PUT", "secrets/svc/hook", {"data": {"password": "before"}})
        ok(
            server,
            "PUT",
            "rotation/policies/svc/hook",
            _policy({"kind": "webhook", "name": "redir"}),
        )
        run = ok(server, "POST", "rotation/rotate/svc/hook")["run"]
        assert run["result"] == "failed", run
        assert run["error"] == "set webhook answered HTTP 307 (redirects are not followed)"
        assert "/b" not in hook.paths()
        assert hook.paths() == ["/a", "/a"]  # set, then rollback; neither re-posted


# -- finding 3: confused deputy -------------------------------------------------------------


def test_finding3_policy_cannot_reach_secrets_the_caller_cannot(
    vaultside_server: VaultsideServerFactory,
) -> None:
    server = vaultside_server()
    admin_dsn = f"postgresql://admin:{secrets.token_urlsafe(16)}@127.0.0.1:1/postgres"
    ok(server, "PUT", "secrets/infra/pg-admin", {"data": {"dsn": admin_dsn}})
    ok(server, "PUT", "secrets/app/db", {"data": {"username": "app", "password": "x"}})
    ok(server, "PUT", "secrets/other/db", {"data": {"password": "y"}})
    token = token_with(
        server,
        "app-rotator",
        [
            {"path": "rotation/*", "capabilities": ["read", "update", "rotate"]},
            {"path": "secrets/app/*", "capabilities": ["create", "update", "read"]},
        ],
    )["token"]
    assert api(server, "GET", "secrets/infra/pg-admin", token=token)[0] == 403
    pg = _policy({"kind": "postgres", "admin_dsn_ref": "kv:infra/pg-admin#dsn", "roles": ["app"]})
    status, doc = api(server, "PUT", "rotation/policies/app/db", pg, token)
    assert status == 403, (status, doc)
    assert "read on secrets/infra/pg-admin (target.admin_dsn_ref)" in errors(doc)
    # Rotation writes new versions: a secret the caller cannot write is refused too.
    status, doc = api(server, "PUT", "rotation/policies/other/db", _policy({"kind": "kv"}), token)
    assert status == 403, (status, doc)
    assert "create/update on secrets/other/db" in errors(doc)
    for path in ("app/db", "other/db"):
        assert api(server, "GET", f"rotation/policies/{path}")[0] == 404
    assert _refused_put(audit_records(server), "app/db", 403, "secrets/infra/pg-admin")
    # What the caller may do, it may still do.
    status, doc = api(server, "PUT", "rotation/policies/app/db", _policy({"kind": "kv"}), token)
    assert status == 200, (status, doc)


# -- runs execute with the authority recorded when the policy was set ------------------------


def _rotator(server: Any) -> tuple[dict[str, Any], list[dict[str, object]]]:
    rules: list[dict[str, object]] = [
        {"path": "rotation/app/*", "capabilities": ["read", "update", "rotate"]},
        {"path": "secrets/app/*", "capabilities": ["create", "update", "read"]},
    ]
    return token_with(server, "app-rotator", rules), rules


def _authorize_refusals(server: Any, accessor: str) -> list[dict[str, Any]]:
    return [
        r
        for r in audit_records(server)
        if r["operation"] == "rotation.rotate"
        and r["status"] == 403
        and r["accessor"] == accessor
        and (r.get("error") or "").startswith("authorize:")
    ]


def test_run_fails_closed_when_the_setters_policy_is_narrowed(
    vaultside_server: VaultsideServerFactory,
) -> None:
    server = vaultside_server()
    ok(server, "PUT", "secrets/app/db", {"data": {"password": "before"}})
    auth, rules = _rotator(server)
    status, doc = api(
        server, "PUT", "rotation/policies/app/db", _policy({"kind": "kv"}), auth["token"]
    )
    assert status == 200, (status, doc)
    ok(server, "PUT", "sys/policies/app-rotator", {"rules": rules[:1]})  # no more secrets/app/*
    time.sleep(1.5)  # the compiled-policy cache's staleness bound
    run = ok(server, "POST", "rotation/rotate/app/db")["run"]
    assert run["result"] == "failed" and run["step"] == "authorize", run
    assert "no longer holds create/update on secrets/app/db" in run["error"]
    assert ok(server, "GET", "secrets/app/db")["data"] == {"password": "before"}
    assert _authorize_refusals(server, auth["accessor"])


@pytest.mark.timeout(300)
def test_scheduler_fails_closed_after_the_setter_is_revoked(
    vaultside_server: VaultsideServerFactory,
) -> None:
    # lease_ttl 3: the scheduler wakes at least every second.
    server = vaultside_server(VAULTSIDE_ROTATION__LEASE_TTL="3")
    ok(server, "PUT", "secrets/app/db", {"data": {"password": "before"}})
    auth, _ = _rotator(server)
    policy = _policy({"kind": "kv"}, every="60")
    status, doc = api(server, "PUT", "rotation/policies/app/db", policy, auth["token"])
    assert status == 200, (status, doc)
    ok(server, "POST", "auth/token/revoke", {"accessor": auth["accessor"]})
    deadline = time.monotonic() + 150
    runs: list[dict[str, Any]] = []
    while not runs and time.monotonic() < deadline:
        time.sleep(2)
        runs = ok(server, "GET", "rotation/history/app/db")["runs"]
    assert runs, "the scheduler never ran the policy"
    run = runs[0]
    assert run["trigger"] == "schedule" and run["result"] == "failed", run
    assert run["step"] == "authorize" and "revoked or expired" in run["error"], run
    assert ok(server, "GET", "secrets/app/db")["metadata"]["version"] == 1
    assert _authorize_refusals(server, auth["accessor"])
