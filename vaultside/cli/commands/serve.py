"""``vaultside serve``: run the HTTP API (``--dev`` for a throwaway local server)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from pathlib import Path

import click
from pydantic import ValidationError

from vaultside.api.body import validation_error
from vaultside.api.server import Bound, check_settings, run, run_server
from vaultside.cli.render import EXIT_ERROR, EXIT_INVALID, fail
from vaultside.config.loader import load_settings
from vaultside.config.settings import Settings
from vaultside.crypto.seal import init_key_file
from vaultside.errors import VaultsideError
from vaultside.logs import setup_logging
from vaultside.services import Services
from vaultside.wiring.server import build_services

DEV_DATA_DIR = Path(".data")


def _print(line: str = "") -> None:
    # Flushed line by line: a parent process reading our stdout sees each line at once.
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def print_dev_banner(token: str, bound: Bound) -> None:
    """The dev root token, printed once, and how to use it."""
    _print(f"Root token: {token}")
    _print()
    _print(f"vaultside dev server listening on {', '.join(bound.urls)}")
    _print("Dev mode: the root key file sits next to the encrypted data; never use it in")
    _print("production.")
    _print()
    _print("  export VAULTSIDE_ADDR=" + bound.primary)
    _print("  export VAULTSIDE_TOKEN=<the root token above>")
    _print("  vaultside secret put app/db user=app password=-   # value from stdin, not argv")
    _print("  vaultside secret get app/db")
    _print()


def build_settings(overrides: dict[str, object]) -> Settings:
    """Settings from env / the config file, with ``overrides`` (CLI flags) on top.

    ``ConfigError`` (one line, exit 2 through the ``VaultsideError`` handler) if invalid.
    """
    return load_settings(overrides)


def _overrides(
    dev: bool,
    listen: str | None,
    workers: int | None,
    unix_socket: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    tls_client_ca: Path | None,
    require_client_cert: bool,
) -> dict[str, object]:
    server: dict[str, object] = {}
    if listen is not None:
        server["listen"] = listen
    if workers is not None:
        server["workers"] = workers
    if unix_socket is not None:
        server["unix_socket"] = str(unix_socket.absolute())
    for key, value in (
        ("tls_cert_file", tls_cert),
        ("tls_key_file", tls_key),
        ("tls_client_ca_file", tls_client_ca),
    ):
        if value is not None:
            server[key] = str(value.absolute())
    if require_client_cert:
        server["tls_require_client_cert"] = True
    out: dict[str, object] = {"server": server} if server else {}
    if dev:
        data_dir = Path(os.environ.get("VAULTSIDE_DATA_DIR") or DEV_DATA_DIR)
        out["data_dir"] = str(data_dir.absolute())
        if "VAULTSIDE_LOG_FORMAT" not in os.environ:
            out["log_format"] = "text"
    return out


async def _dev_root_token(services: Services) -> str:
    token, _info = await services.tokens.create_root(display_name="dev-root")
    return token


async def _bootstrap_dev(settings: Settings) -> str:
    """Unseal once offline and create the dev root token (used before spawning workers)."""
    services = build_services(settings)
    await services.open()
    try:
        await services.barrier.unseal()
        return await _dev_root_token(services)
    finally:
        await services.close()


def _prepare_dev(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_file = settings.resolve(settings.seal.key_file)
    if settings.seal.kind == "file" and not key_file.exists():
        init_key_file(key_file)


@click.command("serve")
@click.option("--dev", is_flag=True, help="Local dev server: creates its key, prints a root token.")
@click.option("--listen", metavar="HOST:PORT", help="TCP address (server.listen).")
@click.option("--workers", type=click.IntRange(1, 64), help="Worker processes (server.workers).")
@click.option("--unix-socket", type=click.Path(path_type=Path), help="Also listen on this socket.")
@click.option("--tls-cert", type=click.Path(exists=True, path_type=Path), help="PEM certificate.")
@click.option("--tls-key", type=click.Path(exists=True, path_type=Path), help="PEM private key.")
@click.option(
    "--tls-client-ca", type=click.Path(exists=True, path_type=Path), help="CA for client certs."
)
@click.option("--require-client-cert", is_flag=True, help="Refuse clients without a certificate.")
@click.option("--worker", is_flag=True, hidden=True)
@click.option("--overrides-json", hidden=True)
@click.option("--unix-fd", type=int, hidden=True)
def cli(
    dev: bool,
    listen: str | None,
    workers: int | None,
    unix_socket: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    tls_client_ca: Path | None,
    require_client_cert: bool,
    worker: bool,
    overrides_json: str | None,
    unix_fd: int | None,
) -> None:
    """Run the vaultside HTTP API until SIGTERM / SIGINT.

    \b
    Example:
      vaultside serve --listen 0.0.0.0:8200 --tls-cert cert.pem --tls-key key.pem
    """
    try:
        if worker:
            _run_worker(json.loads(overrides_json or "{}"), unix_fd)
            return
        overrides = _overrides(
            dev, listen, workers, unix_socket, tls_cert, tls_key, tls_client_ca, require_client_cert
        )
        _serve(build_settings(overrides), overrides, dev)
    except VaultsideError as exc:
        fail("; ".join(exc.public_messages()), EXIT_INVALID)
    except ValidationError as exc:
        fail(f"invalid settings: {validation_error(exc, 'settings').details}", EXIT_INVALID)
    except OSError as exc:
        # e.g. the address is in use or a TLS/socket file is unreadable.
        fail(f"cannot start: {exc.strerror or type(exc).__name__}", EXIT_ERROR)


def _serve(settings: Settings, overrides: dict[str, object], dev: bool) -> None:
    setup_logging(settings.log_level, settings.log_format)
    if dev:
        _prepare_dev(settings)
    if settings.server.workers > 1:
        _run_supervised(settings, overrides, dev)
        return

    async def on_ready(services: Services, bound: Bound) -> None:
        if dev:
            print_dev_banner(await _dev_root_token(services), bound)

    run(run_server(_build(settings), on_ready=on_ready))


def _run_supervised(settings: Settings, overrides: dict[str, object], dev: bool) -> None:
    from vaultside.api.workers import Supervisor

    token = asyncio.run(_bootstrap_dev(settings)) if dev else None
    overrides = {**overrides, "data_dir": str(settings.data_dir.absolute())}
    supervisor = Supervisor(settings, settings.server.workers, overrides)

    def on_ready(bound: Bound) -> None:
        if token is not None:
            print_dev_banner(token, bound)

    raise SystemExit(supervisor.run(on_ready))


def _run_worker(overrides: dict[str, object], unix_fd: int | None) -> None:
    settings = build_settings(overrides)
    setup_logging(settings.log_level, settings.log_format)
    sock = socket.socket(fileno=unix_fd) if unix_fd is not None else None
    run(run_server(_build(settings), reuse_port=True, unix_sock=sock))


def _build(settings: Settings) -> Services:
    """The one place a serving process gets its ``Services`` (checked settings first)."""
    check_settings(settings)
    return build_services(settings)
