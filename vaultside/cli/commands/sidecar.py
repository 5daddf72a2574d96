"""``vaultside sidecar``: render secrets into a tmpfs directory and keep them fresh."""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import tomllib
from pathlib import Path
from typing import Any

import click

from vaultside import errors
from vaultside.cli.params import DURATION, config_duration
from vaultside.cli.render import EXIT_INVALID, exit_code_for, fail
from vaultside.client import HttpSecretSource, VaultsideClient
from vaultside.clock import SystemClock
from vaultside.inject.docker_api import DockerEngine
from vaultside.inject.readiness import ReadinessServer
from vaultside.inject.sidecar import (
    DEFAULT_POLL_INTERVAL,
    DEFAULT_REFRESH_INTERVAL,
    DEFAULT_TIMEOUT,
    ConsumerReporter,
    EtagWatcher,
    Sidecar,
    SidecarConfig,
    default_consumer_id,
)
from vaultside.inject.sidecar_auth import DEFAULT_JWT_FILE, JwtSession
from vaultside.inject.signal import (
    ReloadAction,
    RunCommand,
    SignalContainer,
    SignalProcess,
    parse_signal,
)
from vaultside.inject.spec import parse_volume_options
from vaultside.logs import setup_logging
from vaultside.retry import NO_RETRY

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


def _reload(
    engine: DockerEngine | None,
    sig_name: str,
    pid: int | None,
    pid_file: Path | None,
    container: str | None,
    command: str | None,
) -> ReloadAction | None:
    given = [x for x in (pid, pid_file, container, command) if x is not None]
    if len(given) > 1:
        fail("give at most one reload target (pid, pid file, container or command)", EXIT_INVALID)
    sig = parse_signal(sig_name)
    if pid is not None or pid_file is not None:
        return SignalProcess(sig, pid=pid, pid_file=pid_file)
    if container is not None:
        return SignalContainer(engine or DockerEngine(None), container, sig)
    if command is not None:
        return RunCommand(shlex.split(command))
    return None


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


async def _run(
    sidecar: Sidecar,
    client: VaultsideClient,
    once: bool,
    engine: DockerEngine | None,
    ready_http: tuple[str, int] | None,
) -> None:
    probe = ReadinessServer(sidecar.ready, *ready_http) if ready_http and not once else None
    try:
        if once:
            await sidecar.start()
            return
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if probe is not None:
            await probe.start()
        await sidecar.run(stop)
    finally:
        if not once:
            sidecar.stop_cleanup()
        if probe is not None:
            await probe.stop()
        if sidecar.auth is not None:
            await sidecar.auth.close()
        await client.close()
        if engine is not None:
            await engine.close()


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
    env = dict(os.environ)
    if addr or config.get("addr"):
        env["VAULTSIDE_ADDR"] = str(addr or config.get("addr"))
    if token_file or config.get("token_file"):
        env.pop("VAULTSIDE_TOKEN", None)
        env["VAULTSIDE_TOKEN_FILE"] = str(token_file or config.get("token_file"))
    try:
        spec = parse_volume_options(_options(config, opts, secrets))
        engine = DockerEngine(docker_host) if reload_container else None
        cfg = SidecarConfig(
            output_dir=out_dir,
            spec=spec,
            poll_interval=interval
            or config_duration(config.get("interval", DEFAULT_POLL_INTERVAL), "interval"),
            refresh_interval=refresh
            or config_duration(config.get("refresh", DEFAULT_REFRESH_INTERVAL), "refresh"),
            timeout=_timeout(timeout, config),
            ready_file=ready_file
            or (Path(config["ready_file"]) if "ready_file" in config else None),
            allow_non_tmpfs=allow_non_tmpfs or bool(config.get("allow_non_tmpfs", False)),
            reload=_reload(
                engine, reload_signal, reload_pid, reload_pid_file, reload_container, reload_command
            ),
        )
        auth = None
        auth_method = auth_method or str(config.get("auth", "token"))
        jwt_role = jwt_role or (str(config["role"]) if "role" in config else None)
        jwt_file = jwt_file or (Path(config["jwt_file"]) if "jwt_file" in config else None)
        if auth_method not in ("token", "jwt"):
            fail(f"auth must be token or jwt, got {auth_method[:20]!r}", EXIT_INVALID)
        if auth_method == "jwt":
            if not jwt_role:
                fail("--auth jwt needs --role", EXIT_INVALID)
            if token_file or config.get("token_file"):
                fail("--auth jwt and a token file exclude each other", EXIT_INVALID)
            env.pop("VAULTSIDE_TOKEN", None)
            env.pop("VAULTSIDE_TOKEN_FILE", None)
        # The sidecar retries on its own (first render, refresh loop): one attempt per call here.
        client = VaultsideClient.from_env(env, timeout=10.0, retry=NO_RETRY)
        if auth_method == "jwt" and jwt_role:
            auth = JwtSession(client, jwt_role, jwt_file or DEFAULT_JWT_FILE, clock=SystemClock())
        feed = EtagWatcher(client, EtagWatcher.paths_of(spec))
        consumer_id = consumer or str(config.get("consumer") or default_consumer_id())
        reporter = ConsumerReporter(client, consumer_id)
        sidecar = Sidecar(cfg, HttpSecretSource(client), feed=feed, reporter=reporter, auth=auth)
        http = ready_http or config.get("ready_http")
        asyncio.run(_run(sidecar, client, once, engine, _host_port(str(http)) if http else None))
    except errors.VaultsideError as exc:
        fail("; ".join(exc.public_messages()), exit_code_for(exc))
    except KeyboardInterrupt:
        pass
    if once:
        click.echo(f"rendered {len(spec.files)} file(s) into {out_dir}", err=True)
