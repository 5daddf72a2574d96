"""Leased Vault credentials flow through re-delivery: a container mounts dynamic database
credentials (``vault:`` refs) through the volume plugin, and when the lease nears its max TTL
the new credentials appear in the container's files while the old ones still work.

REAL OpenBao database engine, PostgreSQL, dockerd, ``vaultside serve`` and ``vaultside plugin``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import secrets
import time
from datetime import datetime
from pathlib import Path

import hvac
import pytest

from .services.docker_engine import DockerEngine
from .services.openbao import OpenBaoServer
from .services.postgres import PostgresCluster
from .services.vaultside_server import VaultsideServerFactory
from .stack import SAFE, broker_server, make_token, plugin_stack, write_roles
from .test_broker_database import can_connect

pytestmark = [
    pytest.mark.docker,
    pytest.mark.openbao,
    pytest.mark.postgres,
    pytest.mark.timeout(180),
]

ROLE = "redeliver"
REF = f"vault:corp/database/creds/{ROLE}"


def setup_role(openbao: OpenBaoServer, pg: PostgresCluster) -> None:
    """Its own connection and role (8 s TTL, 12 s max), so other tests' config is untouched."""
    client = hvac.Client(url=openbao.addr, token=openbao.root_token)
    if "database/" not in client.sys.list_mounted_secrets_engines()["data"]:
        client.sys.enable_secrets_engine("database")
    client.secrets.database.configure(
        name="pgre",
        plugin_name="postgresql-database-plugin",
        connection_url=f"postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{pg.port}/postgres?sslmode=disable",
        username=pg.user,
        password=pg.password,
        allowed_roles=[ROLE],
    )
    client.secrets.database.create_role(
        name=ROLE,
        db_name="pgre",
        creation_statements=[
            "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
            "VALID UNTIL '{{expiration}}';"
        ],
        default_ttl="8s",
        max_ttl="12s",
    )


def test_replaced_database_credentials_reach_the_container_before_the_old_expire(
    openbao: OpenBaoServer,
    postgres: PostgresCluster,
    docker_engine: DockerEngine,
    busybox_image: str,
    vaultside_server: VaultsideServerFactory,
) -> None:
    if os.geteuid() != 0:
        pytest.skip("the volume plugin mounts tmpfs: needs root")
    setup_role(openbao, postgres)
    root = vaultside_server.root
    server = broker_server(vaultside_server, openbao.addr, openbao.root_token, root / "bao.token")
    make_token(
        server, "dbapp", [{"path": f"broker/corp/database/creds/{ROLE}", "capabilities": ["read"]}],
        root / "db.token",
    )  # fmt: skip
    write_roles(root, {"db": {"token_file": "db.token"}})
    env = {
        "VAULTSIDE_INJECT__STATE_DIR": str(root / "plugin" / "state"),
        "VAULTSIDE_ROTATION__REDELIVER_INTERVAL": "0.1",
    }
    with plugin_stack(docker_engine, busybox_image, server, root, env=env) as stack:
        volume, container = stack.volume(), f"leased-{secrets.token_hex(4)}"
        stack.containers.append(container)

        def docker(*args: str) -> str:
            res = stack.docker(*args)
            assert res.returncode == 0, res.stderr
            return res.stdout

        def held() -> dict[str, str]:
            out = docker("exec", container, "sh", "-c", "cat /run/secrets/username; echo;"
                         " cat /run/secrets/password")  # fmt: skip
            user, _, password = out.partition("\n")
            return {"username": user, "password": password}

        started = time.time()
        opts = {
            "secret.username": f"{REF}#username", "secret.password": f"{REF}#password",
            "uid": "1000", "gid": "1000",
        }  # fmt: skip
        docker(
            "run", "-d", "--name", container, "--network", "none", *SAFE,
            "--label", "io.vaultside.role=db", "--mount", stack.mount_arg(volume, opts),
            busybox_image, "sh", "-c", "while true; do sleep 1; done",
        )  # fmt: skip
        first = held()
        mounted_at = time.monotonic()
        assert first["username"] and asyncio.run(can_connect(postgres, first))

        deadline = mounted_at + 30
        while (now := held())["username"] == first["username"]:
            assert time.monotonic() < deadline, "the replaced credentials never arrived"
            time.sleep(0.05)
        # The new credentials were written while the old ones still worked: the plugin's
        # re-delivery (its own log) came before the first lease's 12 s max TTL ran out
        # (OpenBao's audit log says when it issued it). Measured on those two events: a
        # `docker exec` and a fresh login after the fact add their own latency, and under
        # load that can use up the lease's last ~2 s even when the plugin was on time.
        issued = _creds_issued(openbao.audit_log, started)
        delivered = _redelivered(stack.plugin_log)
        assert issued and delivered, (issued, delivered)
        assert delivered[0] < issued[0] + 12, f"{delivered[0] - issued[0]:.2f} s after issue"
        assert now["password"] != first["password"]
        assert asyncio.run(can_connect(postgres, now))
        mode = docker("exec", container, "stat", "-c", "%a %u", "/run/secrets/password").split()
        assert mode == ["400", "1000"]
    text = stack.plugin_log.read_text() + server.output()
    assert first["password"] not in text and now["password"] not in text


def _when(stamp: str) -> float:
    """Epoch seconds of an RFC 3339 time as OpenBao and vaultside's JSON logs write it."""
    stamp = stamp.replace("Z", "+00:00")
    if "." in stamp:  # at most microseconds for fromisoformat
        head, _, frac = stamp.partition(".")
        digits = "".join(itertools.takewhile(str.isdigit, frac))
        stamp = f"{head}.{digits[:6]}{frac[len(digits) :]}"
    return datetime.fromisoformat(stamp).timestamp()


def _creds_issued(audit_log: Path, since: float) -> list[float]:
    """When OpenBao answered reads of this test's role since ``since`` (new leases)."""
    times = []
    for line in audit_log.read_text().splitlines():
        entry = json.loads(line)
        if entry.get("type") == "response" and entry["request"]["path"] == f"database/creds/{ROLE}":
            when = _when(entry["time"])
            if when >= since:
                times.append(when)
    return sorted(times)


def _redelivered(plugin_log: Path) -> list[float]:
    """When the plugin wrote rotated credentials into a mounted volume (its JSON log)."""
    times = []
    for line in plugin_log.read_text().splitlines():
        if line.startswith("{") and '"re-delivered rotated secrets"' in line:
            times.append(_when(json.loads(line)["time"]))
    return sorted(times)
