"""The volume plugin, wired from ``Settings``: the one place that builds it.

``plugin_component`` is what ``vaultside plugin`` runs and what ``serve`` adds as a component
with ``inject.plugin_in_server``: an ``EmbeddedPlugin`` (plugin socket + re-delivery loop)
over ``plugin_running`` (``build_plugin`` with one HTTP client per role, ``RoleClients``).
The two differ only in which server the roles resolve through: ``VAULTSIDE_ADDR`` from the
environment for ``vaultside plugin``, this server's own API (``server_api_env``) in ``serve``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import docker

from vaultside.broker.base import SecretSource
from vaultside.client import HttpSecretSource, VaultsideClient
from vaultside.clock import Clock, SystemClock
from vaultside.config.settings import Settings
from vaultside.errors import InvalidRequestError
from vaultside.inject.admission import AdmissionPolicy, ImageFindingsCheck
from vaultside.inject.audit import InjectAuditLog
from vaultside.inject.docker_api import DockerEngine
from vaultside.inject.embedded import EmbeddedPlugin
from vaultside.inject.plugin import PluginServer
from vaultside.inject.roles import Role, RoleBook, load_roles
from vaultside.inject.state import PluginState
from vaultside.inject.volumes import VolumeManager
from vaultside.retry import NO_RETRY
from vaultside.scan.service import ScanService
from vaultside.scan.sources.image import image_sources

log = logging.getLogger(__name__)


class RoleClients:
    """One vaultside client per role, authenticated with that role's token file.

    The server's policy for that token decides what the role may read: a 403 becomes a clear
    mount error. A role without ``token_file`` uses the plugin's own ``VAULTSIDE_TOKEN[_FILE]``.
    A token file that changed (new mtime) is read again, so tokens can be rotated in place.
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env = dict(os.environ if env is None else env)
        self._clients: dict[str, tuple[VaultsideClient, int | None]] = {}
        self._retired: list[VaultsideClient] = []

    @staticmethod
    def _mtime(path: Path | None) -> int | None:
        try:
            return None if path is None else os.stat(path).st_mtime_ns
        except OSError:
            return None

    def _client(self, role: Role) -> VaultsideClient:
        mtime = self._mtime(role.token_file)
        cached = self._clients.get(role.name)
        if cached is not None and cached[1] == mtime:
            return cached[0]
        if cached is not None:
            self._retired.append(cached[0])  # closed with the others; in-flight calls finish
        env = dict(self.env)
        if role.token_file is not None:
            env.pop("VAULTSIDE_TOKEN", None)
            env["VAULTSIDE_TOKEN_FILE"] = str(role.token_file)
        # No retries: Mount must answer within dockerd's timeout, so an unreachable server
        # fails it at once with a clear error; re-delivery backs off in its own loop.
        client = VaultsideClient.from_env(env, timeout=10.0, retry=NO_RETRY)
        self._clients[role.name] = (client, mtime)
        return client

    def __call__(self, role: Role) -> SecretSource:
        return HttpSecretSource(self._client(role))

    async def close(self) -> None:
        """Close every client's connection pool."""
        for client in [*(c for c, _ in self._clients.values()), *self._retired]:
            await client.close()
        self._clients.clear()
        self._retired.clear()


def scanner_findings_check(docker_host: str | None, clock: Clock) -> ImageFindingsCheck:
    """The scanner's "image has unresolved leak findings" check (rules and entropy; the
    plugin has no store, so no known-value matching), cached per image id by the scanner."""

    def client() -> object:
        return docker.DockerClient(base_url=docker_host) if docker_host else docker.from_env()

    return ScanService(
        values=None, docker_factory=client, clock=clock, sources={"image": image_sources}
    )


def build_plugin(
    settings: Settings,
    *,
    sources: Callable[[Role], SecretSource] | None = None,
    findings: ImageFindingsCheck | None = None,
    clock: Clock | None = None,
) -> tuple[PluginServer, DockerEngine]:
    """The plugin server and its Docker adapter, wired from ``settings.inject``."""
    cfg = settings.inject
    if cfg.roles_file is None:
        raise InvalidRequestError(
            "inject.roles_file is required (which containers get which secrets)"
        )
    roles: RoleBook = load_roles(settings.resolve(cfg.roles_file))
    adm = cfg.admission
    actions = {
        "privileged": adm.privileged,
        "root_user": adm.root_user,
        "docker_socket": adm.docker_socket,
        "no_limits": adm.no_limits,
        "writable_rootfs": adm.writable_rootfs,
        "image_not_allowed": adm.image_not_allowed,
        "image_findings": adm.image_findings,
    }
    clock = clock or SystemClock()
    if cfg.container_lookup == "engine_state":
        if cfg.docker_data_root is None:
            raise InvalidRequestError(
                "inject.container_lookup = engine_state needs inject.docker_data_root"
            )
        if findings is None and adm.image_findings != "off":
            raise InvalidRequestError(
                "inject.admission.image_findings scans images through the Docker API: set it "
                "to off with inject.container_lookup = engine_state"
            )
    if findings is None and adm.image_findings != "off":
        findings = scanner_findings_check(cfg.docker_host, clock)
    policy = AdmissionPolicy(actions, allowed_images=tuple(adm.allowed_images), findings=findings)
    named = [*adm.allowed_images, *(i for r in roles.roles for i in r.images)]
    engine = DockerEngine(
        cfg.docker_host,
        data_root=cfg.docker_data_root,
        want_repo_digests=any("@" in i for i in named),
        api_lookup=cfg.container_lookup == "api",
    )
    state_dir = settings.resolve(cfg.state_dir)
    manager = VolumeManager(
        state=PluginState(state_dir / f"{cfg.plugin_name}.state.json"),
        mount_root=Path(cfg.mount_root) / cfg.plugin_name,
        containers=engine,
        roles=roles,
        admission=policy,
        sources=sources if sources is not None else RoleClients(),
        audit=InjectAuditLog(settings.resolve(cfg.audit_file)),
        driver=cfg.plugin_name,
        clock=clock,
    )
    server = PluginServer(manager, name=cfg.plugin_name, socket_dir=cfg.plugin_socket_dir)
    return server, engine


@contextlib.asynccontextmanager
async def plugin_running(
    settings: Settings, *, addr: str | None = None, env: Mapping[str, str] | None = None
) -> AsyncIterator[tuple[PluginServer, DockerEngine]]:
    """Run the plugin for the duration of the block; its roles resolve through the server
    named by ``env`` (``VAULTSIDE_ADDR``, or ``addr`` when given)."""
    client_env = dict(os.environ if env is None else env)
    if addr is not None:
        client_env["VAULTSIDE_ADDR"] = addr
    clients = RoleClients(client_env)
    server, engine = build_plugin(settings, sources=clients)
    try:
        await server.start()
        yield server, engine
    finally:
        await server.stop()
        await clients.close()
        await engine.close()


def server_api_env(settings: Settings, env: Mapping[str, str]) -> dict[str, str]:
    """Client environment (``VAULTSIDE_ADDR``/``VAULTSIDE_SOCKET``) that reaches this server."""
    out = dict(env)
    out.pop("VAULTSIDE_SOCKET", None)
    cfg = settings.server
    if settings.inject.server_addr:
        out["VAULTSIDE_ADDR"] = settings.inject.server_addr
        return out
    scheme = "https" if cfg.tls_cert_file is not None else "http"
    if cfg.unix_socket is not None:
        out["VAULTSIDE_SOCKET"] = str(settings.resolve(cfg.unix_socket))
        out["VAULTSIDE_ADDR"] = f"{scheme}://localhost"
        return out
    host, sep, port = cfg.listen.rpartition(":")
    host = host.strip("[]")
    if not sep or not port.isdigit() or int(port) == 0:
        raise InvalidRequestError(
            "inject.plugin_in_server needs a fixed server listen port (server.listen)"
            " or inject.server_addr"
        )
    if host in ("", "0.0.0.0"):  # noqa: S104 - a wildcard bind is reached on loopback
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    shown = f"[{host}]" if ":" in host else host
    out["VAULTSIDE_ADDR"] = f"{scheme}://{shown}:{port}"
    return out


def plugin_component(
    settings: Settings,
    *,
    clock: Clock,
    in_server: bool,
    env: Mapping[str, str] | None = None,
) -> EmbeddedPlugin:
    """The plugin and its re-delivery loop as one component.

    ``in_server``: run inside ``serve`` (one worker only; roles resolve through this server's
    API). Otherwise (``vaultside plugin``) roles resolve through ``VAULTSIDE_ADDR`` in ``env``.
    """
    base = os.environ if env is None else env
    if in_server:
        if settings.server.workers > 1:
            raise InvalidRequestError(
                "inject.plugin_in_server needs server.workers = 1 (or run `vaultside plugin`)"
            )
        if settings.inject.roles_file is None:
            raise InvalidRequestError(
                "inject.plugin_in_server needs inject.roles_file (which containers get what)"
            )
        client_env = server_api_env(settings, base)
    else:
        client_env = dict(base)

    def open_plugin(
        env: Mapping[str, str],
    ) -> AbstractAsyncContextManager[tuple[PluginServer, DockerEngine]]:
        return plugin_running(settings, env=env)

    return EmbeddedPlugin(
        open_plugin,
        env=client_env,
        clock=clock,
        interval=settings.rotation.redeliver_interval,
    )
