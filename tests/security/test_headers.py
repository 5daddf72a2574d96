"""Finding 10 (response side): no caching of tokens or values, no key paths for strangers.

- Every API response, and in particular each one that carries a token or a secret value
  (token create/lookup, secret reads, resolve), has ``Cache-Control: no-store`` and
  ``X-Content-Type-Options: nosniff``; so do errors and the public routes.
- Unauthenticated ``/v1/sys/seal-status`` (and the 503 every route gives while sealed) does not
  show the root key file's directories.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.services.process import (
    free_port,
    remove_tree,
    short_tempdir,
    spawn,
    terminate,
    wait_until,
)
from tests.integration.services.vaultside_server import VaultsideServer, VaultsideServerFactory

from .wire import Reply, call


@pytest.fixture(scope="module")
def server() -> Iterator[VaultsideServer]:
    root = short_tempdir("hdr")
    factory = VaultsideServerFactory(root)
    try:
        yield factory()
    finally:
        factory.close()
        remove_tree(root)


def _assert_not_cacheable(reply: Reply, what: str) -> None:
    assert reply.headers.get("cache-control") == "no-store", (what, reply.headers)
    assert reply.headers.get("x-content-type-options") == "nosniff", (what, reply.headers)


def test_responses_with_tokens_and_values_are_not_cacheable(server: VaultsideServer) -> None:
    value = secrets.token_urlsafe(16)
    put = call(server, "PUT", "/v1/secrets/app/db", {"data": {"password": value}})
    assert put.status == 200
    created = call(server, "POST", "/v1/auth/token/create", {"ttl": "1h"})
    assert created.status == 200
    token = created.json()["auth"]["token"]
    accessor = created.json()["auth"]["accessor"]
    replies = {
        "token create": created,
        "secret read": call(server, "GET", "/v1/secrets/app/db"),
        "secret version read": call(server, "GET", "/v1/secrets/app/db?version=1"),
        "resolve": call(server, "POST", "/v1/resolve", {"refs": ["kv:app/db#password"]}),
        "lookup-self": call(server, "GET", "/v1/auth/token/lookup-self", token=token),
        "lookup": call(server, "POST", "/v1/auth/token/lookup", {"accessor": accessor}),
        "renew-self": call(server, "POST", "/v1/auth/token/renew-self", {}, token=token),
        "metadata": call(server, "GET", "/v1/secrets/app/db:metadata"),
        "list": call(server, "GET", "/v1/secrets/app?list=true"),
    }
    assert value in replies["secret read"].body.decode()
    assert value in replies["resolve"].body.decode()
    for what, reply in replies.items():
        assert reply.status == 200, (what, reply.status, reply.body[:200])
        _assert_not_cacheable(reply, what)


def test_errors_and_public_routes_are_not_cacheable_either(server: VaultsideServer) -> None:
    replies = {
        "403": call(server, "GET", "/v1/secrets/app/db", token=""),
        "404": call(server, "GET", "/v1/secrets/nope/nothing"),
        "400": call(server, "GET", "/v1/secrets/app/db?version=x"),
        "seal-status": call(server, "GET", "/v1/sys/seal-status", token=""),
        "health": call(server, "GET", "/v1/sys/health", token=""),
        "openapi": call(server, "GET", "/v1/openapi.json", token=""),
    }
    for what, reply in replies.items():
        _assert_not_cacheable(reply, what)


@pytest.fixture
def sealed_server() -> Iterator[tuple[VaultsideServer, Path]]:
    """``vaultside serve`` (not dev) whose root key file is missing: it stays sealed."""
    root = short_tempdir("seal")
    key_dir = root / f"keys-{secrets.token_hex(4)}"
    data = root / "data"
    data.mkdir(mode=0o700)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAULTSIDE_")}
    env.update(
        VAULTSIDE_DATA_DIR=str(data),
        VAULTSIDE_SEAL__KEY_FILE=str(key_dir / "vaultside.key"),
        PYTHONUNBUFFERED="1",
    )
    argv = [sys.executable, "-m", "vaultside", "serve", "--listen", f"127.0.0.1:{port}"]
    log_path = root / "server.log"
    proc = spawn(argv, log_path, env=env, cwd=root)
    try:
        wait_until(
            lambda: "listening" in log_path.read_text(errors="replace"),
            timeout=60, what="sealed vaultside", proc=proc, log_path=log_path,
        )  # fmt: skip
        yield VaultsideServer(data_dir=data, log_path=log_path, port=port, env={}), key_dir
    finally:
        terminate(proc, grace=10)
        remove_tree(root)


def test_seal_status_does_not_show_the_key_files_path(
    sealed_server: tuple[VaultsideServer, Path],
) -> None:
    srv, key_dir = sealed_server
    status = call(srv, "GET", "/v1/sys/seal-status", token="")
    assert status.status == 200 and status.json()["sealed"] is True
    reason = status.json()["reason"]
    assert reason and "vaultside.key" in reason  # still useful to an operator
    assert str(key_dir) not in reason and key_dir.name not in reason, reason
    gated = call(srv, "GET", "/v1/secrets/app/db", token="")
    assert gated.status == 503
    assert str(key_dir) not in gated.body.decode() and key_dir.name not in gated.body.decode()
