"""The Docker engine adapter: the only module that calls the (synchronous) docker SDK.

Why not ``inspect`` inside ``VolumeDriver.Mount``: the engine calls ``Mount`` while it holds
the container's lock (during start), and ``GET /containers/{id}/json`` takes the same lock, so
inspecting there blocks until the plugin call times out (verified on 20.10). The ``ID`` Docker
passes to ``Mount`` is also a random mount id, not the container id. So the plugin finds the
container through the lock-free container list (``filters=volume``) and reads the rest of its
configuration (privileged, user, limits, mounts) from the engine's own ``hostconfig.json`` and
``config.v2.json`` under ``DockerRootDir``, read-only. The plugin runs on the host as root.

``api_lookup=False`` (the managed plugin, which has no Docker socket): the starting
containers are found by scanning ``<data root>/containers/*/config.v2.json`` too, and every
engine call (signal, restart, image inspect) fails with ``UpstreamUnavailableError``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import logging
from pathlib import Path
from typing import Any

import docker
import docker.errors

from vaultside.errors import NotFoundError, UpstreamUnavailableError
from vaultside.inject.admission import ContainerFacts
from vaultside.inject.labels import canonical_labels

log = logging.getLogger(__name__)
DOCKER_SOCKET_PATHS = ("/var/run/docker.sock", "/run/docker.sock")
ACTION_THREADS = 4  # = the reload queue's default concurrency


class DockerEngine:
    """Async facade over one Docker engine (calls run in a worker thread)."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        data_root: Path | None = None,
        want_repo_digests: bool = False,
        api_lookup: bool = True,
    ) -> None:
        self.base_url = base_url
        self.api_lookup = api_lookup
        self._client: Any = None
        self._data_root = data_root
        # Repo digests cost an image inspect per mount; only fetched when a rule names one.
        self.want_repo_digests = want_repo_digests
        # Signal/restart (reload actions; a restart blocks for the stop timeout) get their own
        # threads, so slow ones never hold the shared pool that mounts and writes run on.
        self._actions: concurrent.futures.ThreadPoolExecutor | None = None

    def _api(self) -> Any:
        if not self.api_lookup:
            # Raised before any call is made (``self._api().kill`` is evaluated by the caller).
            raise UpstreamUnavailableError(
                "docker: no engine API in this plugin (inject.container_lookup = engine_state)"
            )
        if self._client is None:
            kwargs: dict[str, Any] = {"timeout": 30}
            if self.base_url:
                kwargs["base_url"] = self.base_url
            self._client = (
                docker.DockerClient(**kwargs) if self.base_url else docker.from_env(**kwargs)
            )
        return self._client.api

    async def _call(
        self,
        what: str,
        fn: Any,
        *args: Any,
        executor: concurrent.futures.Executor | None = None,
        **kwargs: Any,
    ) -> Any:
        try:
            if executor is None:
                return await asyncio.to_thread(fn, *args, **kwargs)
            call = functools.partial(fn, *args, **kwargs)
            return await asyncio.get_running_loop().run_in_executor(executor, call)
        except docker.errors.NotFound as exc:
            raise NotFoundError(f"docker: {what}: not found") from exc
        except docker.errors.APIError as exc:
            raise UpstreamUnavailableError(f"docker: {what} failed: {exc.explanation}") from exc
        except (docker.errors.DockerException, OSError) as exc:
            raise UpstreamUnavailableError(f"docker: {what} failed: {type(exc).__name__}") from exc

    async def data_root(self) -> Path:
        """The engine's ``DockerRootDir``."""
        if self._data_root is None:
            info = await self._call("info", self._api().info)
            self._data_root = Path(str(info["DockerRootDir"]))
        return self._data_root

    async def containers_for_volume(self, volume: str, driver: str) -> list[ContainerFacts]:
        """Containers (not yet running) that mount ``volume`` of ``driver``: the ones starting."""
        if not self.api_lookup:
            root = await self.data_root()
            ids = await asyncio.to_thread(_volume_users_on_disk, root / "containers", volume)
            return [await self.facts(cid) for cid in ids]
        listed = await self._call(
            "list containers", self._api().containers, all=True, filters={"volume": volume}
        )
        users = [
            c
            for c in listed
            if any(
                m.get("Type") == "volume" and m.get("Name") == volume and m.get("Driver") == driver
                for m in c.get("Mounts") or []
            )
        ]
        starting = [c for c in users if c.get("State") != "running"] or users
        return [await self.facts(str(c["Id"])) for c in starting]

    async def facts(self, container_id: str) -> ContainerFacts:
        """Admission facts of a container, from the engine's on-disk config (no lock taken)."""
        base = (await self.data_root()) / "containers" / container_id
        try:
            config = await asyncio.to_thread(_read_json, base / "config.v2.json")
            host = await asyncio.to_thread(_read_json, base / "hostconfig.json")
        except (OSError, ValueError) as exc:
            raise UpstreamUnavailableError(
                f"cannot read the engine's config of container {container_id[:12]}: "
                f"{type(exc).__name__} (the plugin must run on the engine's host as root)"
            ) from exc
        cfg = config.get("Config") or {}
        image_id = str(config.get("Image") or "")
        digests: tuple[str, ...] = ()
        if image_id and self.want_repo_digests:
            try:
                image = await self._call("inspect image", self._api().inspect_image, image_id)
                digests = tuple(image.get("RepoDigests") or ())
            except NotFoundError:
                digests = ()
        mounts = (config.get("MountPoints") or {}).values()
        return ContainerFacts(
            id=container_id,
            name=str(config.get("Name") or "").lstrip("/"),
            image=str(cfg.get("Image") or ""),
            image_id=image_id,
            labels=canonical_labels(
                {str(k): str(v) for k, v in (cfg.get("Labels") or {}).items()},
                owner=container_id,
            ),
            repo_digests=digests,
            privileged=bool(host.get("Privileged")),
            user=str(cfg.get("User") or ""),
            docker_socket_mounted=any(self._is_docker_socket(m) for m in mounts),
            memory_limit=int(host.get("Memory") or 0),
            pids_limit=host.get("PidsLimit"),
            readonly_rootfs=bool(host.get("ReadonlyRootfs")),
        )

    def _is_docker_socket(self, mount: dict[str, Any]) -> bool:
        source = str(mount.get("Source") or "")
        dest = str(mount.get("Destination") or "")
        engine_sock = (self.base_url or "").removeprefix("unix://")
        return (
            dest in DOCKER_SOCKET_PATHS
            or source in DOCKER_SOCKET_PATHS
            or (bool(engine_sock) and source == engine_sock)
            or source.endswith("/docker.sock")
        )

    async def signal_container(self, container: str, signal: str) -> None:
        """Send ``signal`` (e.g. ``HUP``) to a container's main process."""
        await self._call(
            f"signal container {container[:64]}",
            self._api().kill,
            container,
            signal,
            executor=self._action_threads(),
        )

    async def restart_container(self, container: str) -> None:
        """Restart a container (a reload action for apps that cannot re-read files)."""
        await self._call(
            f"restart container {container[:64]}",
            self._api().restart,
            container,
            executor=self._action_threads(),
        )

    def _action_threads(self) -> concurrent.futures.Executor:
        if self._actions is None:
            self._actions = concurrent.futures.ThreadPoolExecutor(
                max_workers=ACTION_THREADS, thread_name_prefix="docker-action"
            )
        return self._actions

    async def close(self) -> None:
        """Close the SDK's connection pool (actions still queued are dropped)."""
        if self._actions is not None:
            self._actions.shutdown(wait=False, cancel_futures=True)
            self._actions = None
        if self._client is not None:
            await asyncio.to_thread(self._client.close)
            self._client = None


def _read_json(path: Path) -> dict[str, Any]:
    obj = json.loads(path.read_text(encoding="utf-8"))
    return obj if isinstance(obj, dict) else {}


def _volume_users_on_disk(containers: Path, volume: str) -> list[str]:
    """Ids of containers whose ``config.v2.json`` mounts the named ``volume``, the starting
    (not running) ones if any. Volume names are unique within one engine, so the name alone
    picks the volume (the driver a managed plugin is known by, ``name:tag``, is not needed)."""
    users: list[tuple[str, bool]] = []
    try:
        entries = list(containers.iterdir())
    except OSError as exc:
        raise UpstreamUnavailableError(
            f"cannot list the engine's containers in {containers}: {type(exc).__name__} "
            "(mount <docker data root>/containers read-only into the plugin)"
        ) from exc
    for entry in entries:
        try:
            config = _read_json(entry / "config.v2.json")
        except (OSError, ValueError):
            continue  # being created or removed right now
        mounts = (config.get("MountPoints") or {}).values()
        if any(m.get("Type") == "volume" and m.get("Name") == volume for m in mounts):
            running = bool((config.get("State") or {}).get("Running"))
            users.append((str(config.get("ID") or entry.name), running))
    starting = [cid for cid, running in users if not running]
    return starting or [cid for cid, _ in users]
