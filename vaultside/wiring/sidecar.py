"""The sidecar, wired from what ``vaultside sidecar`` was asked: the one place that builds it.

The CLI merges its flags over the sidecar's TOML file into ``SidecarOptions``;
``build_sidecar`` turns them into a ``SidecarProcess``: the API client (one attempt per call:
the sidecar retries on its own), the login session (``auth = "jwt"``), the change feed, the
consumer reporter, the reload action and the readiness probe. Invalid combinations raise
``InvalidRequestError`` before anything connects.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from vaultside.client import HttpSecretSource, VaultsideClient
from vaultside.clock import SystemClock
from vaultside.errors import InvalidRequestError
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
from vaultside.inject.sidecar_process import Closeable, SidecarProcess
from vaultside.inject.signal import (
    ReloadAction,
    RunCommand,
    SignalContainer,
    SignalProcess,
    parse_signal,
)
from vaultside.inject.spec import parse_volume_options
from vaultside.retry import NO_RETRY


@dataclass(frozen=True)
class SidecarOptions:
    """What the sidecar was asked to do (flags over its config file)."""

    output_dir: Path
    # Volume options (``secret.<file>=<ref>``, ``mode``, ``template``, ...; docs/injection.md).
    options: Mapping[str, str]
    once: bool = False
    poll_interval: float = DEFAULT_POLL_INTERVAL
    refresh_interval: float = DEFAULT_REFRESH_INTERVAL
    # The first render's deadline in seconds; None waits forever.
    timeout: float | None = DEFAULT_TIMEOUT
    ready_file: Path | None = None
    ready_http: tuple[str, int] | None = None
    allow_non_tmpfs: bool = False
    reload_signal: str = "HUP"
    reload_pid: int | None = None
    reload_pid_file: Path | None = None
    reload_container: str | None = None
    reload_command: str | None = None
    docker_host: str | None = None
    addr: str | None = None
    token_file: Path | None = None
    auth: str = "token"
    jwt_role: str | None = None
    jwt_file: Path | None = None
    consumer: str | None = None


def build_reload(opts: SidecarOptions, engine: DockerEngine | None) -> ReloadAction | None:
    """The action run after a change: signal a pid, a pid file's pid, a container, or a command."""
    targets = (opts.reload_pid, opts.reload_pid_file, opts.reload_container, opts.reload_command)
    if len([x for x in targets if x is not None]) > 1:
        raise InvalidRequestError(
            "give at most one reload target (pid, pid file, container or command)"
        )
    sig = parse_signal(opts.reload_signal)
    if opts.reload_pid is not None or opts.reload_pid_file is not None:
        return SignalProcess(sig, pid=opts.reload_pid, pid_file=opts.reload_pid_file)
    if opts.reload_container is not None:
        return SignalContainer(engine or DockerEngine(None), opts.reload_container, sig)
    if opts.reload_command is not None:
        return RunCommand(shlex.split(opts.reload_command))
    return None


def client_env(opts: SidecarOptions, env: Mapping[str, str]) -> dict[str, str]:
    """The API client's environment: ``addr`` and the token file (or none, for jwt) applied."""
    if opts.auth not in ("token", "jwt"):
        raise InvalidRequestError(f"auth must be token or jwt, got {opts.auth[:20]!r}")
    out = dict(env)
    if opts.addr:
        out["VAULTSIDE_ADDR"] = opts.addr
    if opts.token_file:
        out.pop("VAULTSIDE_TOKEN", None)
        out["VAULTSIDE_TOKEN_FILE"] = str(opts.token_file)
    if opts.auth == "jwt":
        if not opts.jwt_role:
            raise InvalidRequestError("--auth jwt needs --role")
        if opts.token_file:
            raise InvalidRequestError("--auth jwt and a token file exclude each other")
        out.pop("VAULTSIDE_TOKEN", None)
        out.pop("VAULTSIDE_TOKEN_FILE", None)
    return out


def build_sidecar(opts: SidecarOptions, env: Mapping[str, str]) -> SidecarProcess:
    """The sidecar process for ``opts``; ``InvalidRequestError`` if they do not fit together."""
    spec = parse_volume_options(dict(opts.options))
    engine = DockerEngine(opts.docker_host) if opts.reload_container else None
    config = SidecarConfig(
        output_dir=opts.output_dir,
        spec=spec,
        poll_interval=opts.poll_interval,
        refresh_interval=opts.refresh_interval,
        timeout=opts.timeout,
        ready_file=opts.ready_file,
        allow_non_tmpfs=opts.allow_non_tmpfs,
        reload=build_reload(opts, engine),
    )
    # The sidecar retries on its own (first render, refresh loop): one attempt per call here.
    client = VaultsideClient.from_env(client_env(opts, env), timeout=10.0, retry=NO_RETRY)
    auth = None
    if opts.auth == "jwt" and opts.jwt_role:
        auth = JwtSession(
            client, opts.jwt_role, opts.jwt_file or DEFAULT_JWT_FILE, clock=SystemClock()
        )
    feed = EtagWatcher(client, EtagWatcher.paths_of(spec))
    reporter = ConsumerReporter(client, opts.consumer or default_consumer_id())
    sidecar = Sidecar(config, HttpSecretSource(client), feed=feed, reporter=reporter, auth=auth)
    probe = None
    if opts.ready_http is not None and not opts.once:
        probe = ReadinessServer(sidecar.ready, *opts.ready_http)
    resources: list[Closeable] = [client]
    if engine is not None:
        resources.append(engine)
    return SidecarProcess(sidecar, once=opts.once, probe=probe, resources=resources)
