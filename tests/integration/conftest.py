"""Session fixtures that start REAL services: dockerd, OpenBao, PostgreSQL, vaultside.

Contract (other test modules rely on these names and attributes):

- ``docker_engine``: ``.client`` (docker.DockerClient), ``.base_url``, ``.env`` (DOCKER_HOST
  set), ``.data_root``. A dedicated dockerd, ``--bridge=none --iptables=false``.
- ``busybox_image``: ``"vaultside-test/busybox:latest"``, FROM scratch + static busybox.
- ``openbao``: ``.addr``, ``.root_token``, ``.bin``, ``.stop()``, ``.start()``, ``.audit_log``.
- ``postgres``: ``.dsn`` (superuser, password auth), ``.host``, ``.port``, ``.user``,
  ``.stop()``, ``.start()``.
- ``vaultside_server`` (function scope): ``vaultside_server(**env) -> server`` with ``.addr``,
  ``.root_token``, ``.data_dir``, ``.proc``, ``.stop()``, ``.kill()``, ``.restart()``.
- ``stack`` (module scope, root only): a ``stack.Stack``: server holding ``app/db``
  (user, password), ``app/api`` (token) and ``other/x`` (k), whose values are in ``.values``;
  roles ``web`` (reads ``app/*``), ``apionly`` (reads ``app/api``) and ``narrow`` (web's
  token, ``allow = ["kv:app/api#*"]``); a running ``vaultside plugin`` that denies root users
  and images with findings.

The service fixtures are defined in ``services/fixtures.py`` (shared with ``tests/security``);
the injection stack in ``stack.py`` (shared with ``bench/``).

A service that cannot start here skips the tests that need it, with the reason and the
service's log tail; under ``CI=true`` that is a failure instead. vaultside itself failing to
start is always a failure: it is the thing under test.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from .services.docker_engine import DockerEngine
from .services.fixtures import (
    busybox_image,
    docker_engine,
    openbao,
    postgres,
    vaultside_server,
)
from .services.process import remove_tree, short_tempdir
from .stack import READ_APP, Stack, api, make_token, plugin_stack, serving, write_roles

__all__ = [
    "busybox_image",
    "docker_engine",
    "openbao",
    "postgres",
    "stack",
    "vaultside_server",
]


@pytest.fixture(scope="module")
def stack(docker_engine: DockerEngine, busybox_image: str) -> Iterator[Stack]:
    """Server + role tokens + ``vaultside plugin`` on ``docker_engine`` (see the contract)."""
    if os.geteuid() != 0:
        pytest.skip("the volume plugin mounts tmpfs: needs root")
    root = short_tempdir("inj")
    try:
        with serving(root) as server:
            values = {
                "user": f"u{secrets.token_hex(6)}",
                "password": f"p:{secrets.token_urlsafe(18)}",
                "token": f"t{secrets.token_hex(16)}",
                "other": f"o{secrets.token_hex(16)}",
            }
            db = {"user": values["user"], "password": values["password"]}
            api(server, "PUT", "secrets/app/db", {"data": db})
            api(server, "PUT", "secrets/app/api", {"data": {"token": values["token"]}})
            api(server, "PUT", "secrets/other/x", {"data": {"k": values["other"]}})
            make_token(server, "web", READ_APP, root / "web.token")
            make_token(
                server, "apionly", [{"path": "secrets/app/api", "capabilities": ["read"]}],
                root / "apionly.token",
            )  # fmt: skip
            write_roles(root, {
                "web": {"token_file": "web.token"},
                "apionly": {"token_file": "apionly.token"},
                "narrow": {"token_file": "web.token", "allow": ["kv:app/api#*"]},
            })  # fmt: skip
            env = {
                "VAULTSIDE_INJECT__ADMISSION__ROOT_USER": "deny",
                "VAULTSIDE_INJECT__ADMISSION__IMAGE_FINDINGS": "deny",
                "VAULTSIDE_INJECT__STATE_DIR": str(root / "plugin" / "state"),
            }
            with plugin_stack(docker_engine, busybox_image, server, root, env=env) as st:
                st.values.update(values)
                yield st
    finally:
        remove_tree(root)
