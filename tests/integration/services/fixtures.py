"""Session fixtures that start REAL services: dockerd, OpenBao, PostgreSQL, vaultside.

Registered in ``tests/integration/conftest.py`` (all of them) and ``tests/security/conftest.py``
(``vaultside_server`` only: a second copy of a session fixture such as ``docker_engine`` would
start a second dockerd in a ``pytest tests`` session). The contract of each fixture is in
``tests/integration/conftest.py``.

A service that cannot start here skips the tests that need it, with the reason and the
service's log tail; under ``CI=true`` that is a failure instead. vaultside itself failing to
start is always a failure: it is the thing under test.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import NoReturn, TypeVar

import pytest

from .docker_engine import DockerEngine, build_busybox_image
from .openbao import OpenBaoServer
from .postgres import PostgresCluster
from .process import ServiceUnavailable, remove_tree, short_tempdir
from .vaultside_server import VaultsideServerFactory

T = TypeVar("T")


def _unavailable(service: str, exc: ServiceUnavailable) -> NoReturn:
    message = f"{service} unavailable: {exc}"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _start(service: str, start: Callable[[], T]) -> T:
    try:
        return start()
    except ServiceUnavailable as exc:
        _unavailable(service, exc)


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    """A dedicated dockerd for this test session."""
    engine = _start("dockerd", DockerEngine.start)
    try:
        yield engine
    finally:
        engine.close()


@pytest.fixture(scope="session")
def busybox_image(docker_engine: DockerEngine) -> str:
    """Tag of a FROM-scratch busybox image built in ``docker_engine``."""
    return _start("busybox image", lambda: build_busybox_image(docker_engine))


@pytest.fixture(scope="session")
def openbao() -> Iterator[OpenBaoServer]:
    """An OpenBao dev server with a file audit device (restart loses its data)."""
    server = _start("OpenBao", OpenBaoServer.create)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL cluster with password auth on 127.0.0.1."""
    cluster = _start("PostgreSQL", PostgresCluster.create)
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def vaultside_server() -> Iterator[VaultsideServerFactory]:
    """Factory: ``vaultside_server(VAULTSIDE_X="y")`` starts ``vaultside serve --dev``."""
    root = short_tempdir("srv")
    factory = VaultsideServerFactory(root)
    try:
        yield factory
    finally:
        factory.close()
        remove_tree(root)
