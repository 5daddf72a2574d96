"""The grace queue and ``rotation status`` on a REAL ``vaultside serve`` over REAL PostgreSQL.

Three rotations inside one grace period, with a server restart between them: every replaced
version is soft-deleted when its own grace ends (before the queue, each rotation reset the
one timer and the older versions were kept forever). ``rotation status`` answers for a path
without a policy and measures "current" against the store.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from datetime import datetime
from typing import Any

import pytest

from .services.vaultside_server import VaultsideServer
from .test_postgres_server import call, pg_server  # noqa: F401 (fixture)

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(180)]

GRACE = 8.0
# The leader lists the grace queue at least every lease_ttl / 3 (1 s here); allow slack.
LATE = 4.0


def api(server: VaultsideServer, method: str, path: str, body: object = None) -> dict[str, Any]:
    status, doc = call(server, method, f"/v1/{path}", body)
    assert 200 <= status < 300, (method, path, status, doc)
    return doc


def deletion_times(server: VaultsideServer, path: str) -> dict[int, float]:
    meta = api(server, "GET", f"secrets/{path}:metadata")
    out = {}
    for version, info in meta["versions"].items():
        if info.get("deletion_time"):
            out[int(version)] = datetime.fromisoformat(info["deletion_time"]).timestamp()
    return out


def test_each_version_in_grace_is_deleted_on_time_across_a_restart(
    pg_server: tuple[VaultsideServer, str],  # noqa: F811
) -> None:
    server, _dsn = pg_server
    # A short scheduler lease (written as a duration) so the restarted server leads at once.
    server.env["VAULTSIDE_ROTATION__LEASE_TTL"] = "3s"
    server.restart()
    api(server, "PUT", "secrets/app/grace", {"data": {"token": secrets.token_hex(16)}})
    api(server, "PUT", "rotation/policies/app/grace", {
        "every": "1h", "grace": f"{int(GRACE)}s",
        "generator": {"kind": "token"}, "target": {"kind": "kv"},
    })  # fmt: skip
    due: dict[int, float] = {}
    assert api(server, "POST", "rotation/rotate/app/grace")["run"]["version"] == 2
    due[1] = time.time() + GRACE
    time.sleep(1)
    assert api(server, "POST", "rotation/rotate/app/grace")["run"]["version"] == 3
    due[2] = time.time() + GRACE
    status = api(server, "GET", "rotation/status/app/grace")
    assert status["current_version"] == 3
    assert [g["version"] for g in status["grace"]] == [1, 2]
    server.restart()  # the queue lives in PostgreSQL, not in the process
    assert api(server, "POST", "rotation/rotate/app/grace")["run"]["version"] == 4
    due[3] = time.time() + GRACE
    deadline = max(due.values()) + LATE + 10
    while time.time() < deadline and set(deletion_times(server, "app/grace")) != {1, 2, 3}:
        time.sleep(0.2)
    deleted = deletion_times(server, "app/grace")
    assert set(deleted) == {1, 2, 3}, deleted
    for version, when in deleted.items():
        assert due[version] - 1.5 <= when <= due[version] + LATE, (version, when - due[version])
    assert api(server, "GET", "secrets/app/grace:metadata")["current_version"] == 4
    assert api(server, "GET", "rotation/status/app/grace")["grace"] == []


def test_status_answers_for_any_path_and_current_follows_the_store(
    pg_server: tuple[VaultsideServer, str],  # noqa: F811
) -> None:
    server, _dsn = pg_server
    api(server, "PUT", "secrets/app/plain", {"data": {"token": secrets.token_hex(16)}})
    api(server, "POST", "consumers", {
        "consumer": "sidecar-one", "kind": "sidecar", "holdings": {"app/plain": 1},
    })  # fmt: skip
    status = api(server, "GET", "rotation/status/app/plain")
    assert status["policy"] is None and status["current_version"] == 1
    [consumer] = status["consumers"]
    assert consumer["consumer"] == "sidecar-one" and consumer["current"] is True
    assert consumer["state"] == "live"
    api(server, "PUT", "secrets/app/plain", {"data": {"token": secrets.token_hex(16)}})
    [consumer] = api(server, "GET", "rotation/status/app/plain")["consumers"]
    assert consumer["current"] is False


def test_cli_status_shows_the_current_version_before_the_first_rotation(
    pg_server: tuple[VaultsideServer, str],  # noqa: F811
) -> None:
    server, _dsn = pg_server
    api(server, "PUT", "secrets/app/new", {"data": {"token": secrets.token_hex(16)}})
    api(server, "PUT", "rotation/policies/app/new", {
        "every": "1d", "generator": {"kind": "token"}, "target": {"kind": "kv"},
    })  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAULTSIDE_")}
    env |= {"VAULTSIDE_ADDR": server.addr, "VAULTSIDE_TOKEN": server.root_token}
    out = subprocess.run(
        [sys.executable, "-m", "vaultside", "rotation", "status", "app/new"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    [row] = [line for line in out.splitlines() if "current version" in line]
    cells = [c.strip() for c in row.split("  ") if c.strip()]  # plain columns in a pipe
    assert cells == ["current version", "1"], out  # was "-" until the first rotation


def test_a_silent_consumer_is_gone_then_forgotten(
    pg_server: tuple[VaultsideServer, str],  # noqa: F811
) -> None:
    server, _dsn = pg_server
    server.env |= {
        "VAULTSIDE_ROTATION__CONSUMER_GONE_AFTER": "3s",
        "VAULTSIDE_ROTATION__CONSUMER_TTL": "6s",
    }
    server.restart()
    api(server, "PUT", "secrets/app/c", {"data": {"token": secrets.token_hex(16)}})
    # A plugin mount whose container is then deleted: it never reports again.
    api(server, "POST", "consumers", {
        "consumer": "plugin-0123456789ab", "kind": "plugin", "container": "web",
        "holdings": {"app/c": 1},
    })  # fmt: skip
    start = time.monotonic()

    def states() -> dict[str, str]:
        consumers = api(server, "GET", "rotation/status/app/c")["consumers"]
        return {c["consumer"]: c["state"] for c in consumers}

    assert states() == {"plugin-0123456789ab": "live"}
    while time.monotonic() - start < 3.5:
        time.sleep(0.2)
    assert states() == {"plugin-0123456789ab": "gone"}
    while time.monotonic() - start < 6.5:
        time.sleep(0.2)
    assert states() == {}
