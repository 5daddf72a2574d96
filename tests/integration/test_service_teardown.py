"""Each service's teardown leaves nothing behind: no process, no mount, no temp dir."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .services.docker_engine import BUSYBOX_TAG, DockerEngine, build_busybox_image
from .services.openbao import OpenBaoServer
from .services.postgres import PostgresCluster
from .services.process import ServiceUnavailable


def _start(start: Callable[[], Any]) -> Any:
    try:
        return start()
    except ServiceUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(str(exc))


def _mounts_under(root: Path) -> list[str]:
    with open("/proc/self/mounts") as f:
        return [line.split()[1] for line in f if line.split()[1].startswith(f"{root}/")]


def test_docker_engine_teardown_with_a_running_container() -> None:
    engine: DockerEngine = _start(DockerEngine.start)
    root, proc = engine.root, engine.proc
    assert proc is not None
    try:
        build_busybox_image(engine)
        container = engine.client.containers.run(
            BUSYBOX_TAG, ["sleep", "600"], detach=True, network_mode="none", tmpfs={"/run/s": ""}
        )
        container.reload()
        assert container.status == "running"
        assert _mounts_under(root)
    finally:
        engine.close()
    assert proc.poll() is not None
    assert _mounts_under(root) == []
    assert not root.exists()


def test_openbao_and_postgres_teardown() -> None:
    bao: OpenBaoServer = _start(OpenBaoServer.create)
    bao_proc = bao.proc
    bao.close()
    assert bao_proc is not None and bao_proc.poll() is not None
    assert not bao.root.exists()
    pg: PostgresCluster = _start(PostgresCluster.create)
    pg_proc = pg.proc
    pg.close()
    assert pg_proc is not None and pg_proc.poll() is not None
    assert not pg.root.exists()
