"""``vaultside sidecar``: render secrets into a tmpfs directory and keep them fresh."""

from __future__ import annotations

import asyncio
import os
import tomllib
from pathlib import Path
from typing import Any

import click

from vaultside import errors
from vaultside.cli.params import DURATION, config_duration
from vaultside.cli.render import EXIT_INVALID, exit_code_for, fail
from vaultside.inject.sidecar import (
    DEFAULT_POLL_INTERVAL,
    DEFAULT_REFRESH_INTERVAL,
    DEFAULT_TIMEOUT,
)
from vaultside.inject.sidecar_auth import DEFAULT_JWT_FILE
from vaultside.lifecycle import STOP_SIGNALS, run_until_signal
from vaultside.logs import setup_logging
from vaultside.wiring.sidecar import SidecarOptions, build_sidecar

CONFIG_KEYS = frozenset(
    {"dir", "addr", "token_file", "interval", "refresh", "ready_file", "ready_http",
     "allow_non_tmpfs", "options", "consumer", "auth", "role", "jwt_file", "timeout"}
)  # fmt: skip


def _options(
    config: dict[str, Any], opts: tuple[str, ...], secrets: tuple[str, ...]
) -> dict[str, str]:
    out = {str(k): str(v) for k, v in (config.get("options") or {}).items()}
    for pair in opts:
        key, sep, value = pair.partition("=")
        if not sep:
            fail(f"--opt expects KEY=VALUE, got {key[:40]!r}", EXIT_INVALID)
        out[key] = value
    for pair in secrets:
        name, sep, ref = pair.partition("=")
        if not sep:
            fail(f"--secret expects FILE=REF, got {name[:40]!r}", EXIT_INVALID)
        out[f"secret.{name}"] = ref
    return out


def _timeout(flag: float | None, config: dict[str, Any]) -> float | None:
    """The first render's deadline in seconds; ``None`` (given as 0) waits forever."""
    if flag is not None:
        return flag or None
    return config_duration(config.get("timeout", DEFAULT_TIMEOUT), "timeout") or None


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        fail(f"--ready-http expects HOST:PORT, got {text[:60]!r}", EXIT_INVALID)
    return host or "127.0.0.1", int(port)


@click.command("sidecar")
@click.option(
    "--dir", "output_dir", type=click.Path(path_type=Path), help="Output directory (tmpfs)."
)
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="Sidecar TOML file.")
@click.option(
    "--secret", "secrets", multiple=True, help="FILE=REF (same as --opt secret.FILE=REF)."
)
@click.option(
    "--opt", "opts", multiple=True, help="Volume option KEY=VALUE (see docs/injection.md)."
)
@click.option("--once", is_flag=True, help="Render once and exit (init container).")
@click.option(
    "--interval", type=DURATION, help=f"Poll interval, s (default {DEFAULT_POLL_INTERVAL})."
)
@click.option(
    "--refresh", type=DURATION, help=f"Full refresh, s (default {DEFAULT_REFRESH_INTERVAL:g})."
)
@click.option(
    "--timeout",
    type=DURATION,
    envvar="VAULTSIDE_SIDECAR_TIMEOUT",
    help=f"Seconds to wait for the server before the first render gives up, exit 7 "
    f"(default {DEFAULT_TIMEOUT:g}; 0 = forever; env VAULTSIDE_SIDECAR_TIMEOUT).",
)
@click.option("--ready-file", type=click.Path(path_type=Path), help="Written once all files exist.")
@click.option("--ready-http", metavar="HOST:PORT", help="Serve GET /ready (200 once rendered).")
@click.option("--allow-non-tmpfs", is_flag=True, help="DANGEROUS: allow a disk-backed directory.")
@click.option(
    "--reload-signal", default="HUP", show_default=True, help="Signal sent after a change."
)
@click.option("--reload-pid", type=int, help="Signal this pid (shared PID namespace).")
@click.option(
    "--reload-pid-file", type=click.Path(path_type=Path), help="Signal the pid in this file."
)
@click.option("--reload-container", help="Ask Docker to signal this container.")
@click.option("--reload-command", help="Run this command (no shell) after a change.")
@click.option("--docker-host", help="Docker engine URL for --reload-container.")
@click.option("--addr", help="vaultside server (default $VAULTSIDE_ADDR).")
@click.option(
    "--token-file", type=click.Path(path_type=Path), help="Token file (or $VAULTSIDE_TOKEN_FILE)."
)
@click.option(
    "--auth",
    "auth_method",
    type=click.Choice(["token", "jwt"]),
    help="token (default): --token-file/$VAULTSIDE_TOKEN; jwt: log in with --role and "
    "--jwt-file (a projected ServiceAccount token).",
)
@click.option("--role", "jwt_role", help="JWT role to log in with (--auth jwt).")
@click.option(
    "--jwt-file",
    type=click.Path(path_type=Path),
    help=f"Projected ServiceAccount token (--auth jwt; default {DEFAULT_JWT_FILE}).",
)
@click.option(
    "--consumer",
    help="Consumer id for version reports (default sidecar-<hostname>; needs update on "
    "consumers/<id>).",
)
def cli(
    output_dir: Path | None,
    config_file: Path | None,
    secrets: tuple[str, ...],
    opts: tuple[str, ...],
    once: bool,
    interval: float | None,
    refresh: float | None,
    timeout: float | None,
    ready_file: Path | None,
    ready_http: str | None,
    allow_non_tmpfs: bool,
    reload_signal: str,
    reload_pid: int | None,
    reload_pid_file: Path | None,
    reload_container: str | None,
    reload_command: str | None,
    docker_host: str | None,
    addr: str | None,
    token_file: Path | None,
    auth_method: str | None,
    jwt_role: str | None,
    jwt_file: Path | None,
    consumer: str | None,
) -> None:
    """Render secrets as files into a tmpfs directory; with --once exit 0 when all are written.

    \b
    Example:
      vaultside sidecar --dir /run/secrets --secret db_password=kv:app/db#password --once
    """
    text = os.environ.get("VAULTSIDE_LOG_FORMAT") == "text"
    setup_logging(os.environ.get("VAULTSIDE_LOG_LEVEL", "INFO"), "text" if text else "json")
    config: dict[str, Any] = {}
    if config_file is not None:
        try:
            config = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            fail(f"cannot read sidecar config {config_file}: {exc}", EXIT_INVALID)
    unknown = sorted(set(config) - CONFIG_KEYS)
    if unknown:
        fail(f"sidecar config {config_file}: unknown key {unknown[0]!r}", EXIT_INVALID)
    out_dir = output_dir or (Path(config["dir"]) if "dir" in config else None)
    if out_dir is None:
        fail("--dir (or dir in --config) is required", EXIT_INVALID)
    try:
        http = ready_http or config.get("ready_http")
        options = SidecarOptions(
            output_dir=out_dir,
            options=_options(config, opts, secrets),
            once=once,
            poll_interval=interval
            or config_duration(config.get("interval", DEFAULT_POLL_INTERVAL), "interval"),
            refresh_interval=refresh
            or config_duration(config.get("refresh", DEFAULT_REFRESH_INTERVAL), "refresh"),
            timeout=_timeout(timeout, config),
            ready_file=ready_file
            or (Path(config["ready_file"]) if "ready_file" in config else None),
            ready_http=_host_port(str(http)) if http else None,
            allow_non_tmpfs=allow_non_tmpfs or bool(config.get("allow_non_tmpfs", False)),
            reload_signal=reload_signal,
            reload_pid=reload_pid,
            reload_pid_file=reload_pid_file,
            reload_container=reload_container,
            reload_command=reload_command,
            docker_host=docker_host,
            addr=str(addr or config.get("addr")) if addr or config.get("addr") else None,
            token_file=Path(str(token_file or config.get("token_file")))
            if token_file or config.get("token_file")
            else None,
            auth=auth_method or str(config.get("auth", "token")),
            jwt_role=jwt_role or (str(config["role"]) if "role" in config else None),
            jwt_file=jwt_file or (Path(config["jwt_file"]) if "jwt_file" in config else None),
            consumer=consumer or (str(config["consumer"]) if config.get("consumer") else None),
        )
        process = build_sidecar(options, os.environ)
        # --once is an init container's job: a signal ends it the default way (not "done").
        signals = () if once else STOP_SIGNALS
        asyncio.run(run_until_signal([process], main=process.run, signals=signals))
    except errors.VaultsideError as exc:
        fail("; ".join(exc.public_messages()), exit_code_for(exc))
    except KeyboardInterrupt:
        pass
    if once:
        files = process.sidecar.config.spec.files
        click.echo(f"rendered {len(files)} file(s) into {out_dir}", err=True)
