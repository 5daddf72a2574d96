"""Running and stopped containers through the Docker API: env, command and args, labels, posture.

The only scan module besides ``sources/image.py`` that calls the Docker SDK (synchronously:
async callers run the scanner in a thread).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import docker
import docker.errors

from vaultside.errors import NotFoundError, UpstreamError, UpstreamUnavailableError
from vaultside.scan.base import Chunk, Finding, Location, ScanStats, Source
from vaultside.scan.posture import check_container
from vaultside.scan.sources.request import ScanRequest


def docker_client(base_url: str | None = None) -> Any:
    """A Docker client (``DOCKER_HOST`` etc. when ``base_url`` is None)."""
    try:
        if base_url:
            return docker.DockerClient(base_url=base_url, version="auto")
        return docker.from_env(version="auto")
    except docker.errors.DockerException as exc:
        raise UpstreamUnavailableError(f"cannot reach the Docker engine: {exc}") from exc


def argv_lines(argv: list[str]) -> list[str]:
    """Arguments one per line, ``--flag value`` joined as ``--flag=value`` so rules see pairs."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if arg.startswith("-") and "=" not in arg and nxt is not None and not nxt.startswith("-"):
            out.append(f"{arg}={nxt}")
            i += 2
            continue
        out.append(arg)
        i += 1
    return out


def container_chunks(attrs: dict[str, Any]) -> Iterator[Chunk]:
    """Chunks for one container's inspect data: Env, command and args, Labels."""
    name = str(attrs.get("Name", "")).lstrip("/") or str(attrs.get("Id", ""))[:12]
    cfg = attrs.get("Config") or {}
    env = [str(e) for e in cfg.get("Env") or []]
    if env:
        yield Chunk(("\n".join(env) + "\n").encode(), Location("container", name, "container/Env"))
    argv = [str(attrs.get("Path") or ""), *[str(a) for a in attrs.get("Args") or []]]
    argv = [a for a in argv if a]
    if argv:
        text = "\n".join(argv_lines(argv)) + "\n"
        yield Chunk(text.encode(), Location("container", name, "container/Cmd"))
    labels = cfg.get("Labels") or {}
    if labels:
        text = "\n".join(f"{k}={v}" for k, v in labels.items()) + "\n"
        yield Chunk(text.encode(), Location("container", name, "container/Labels"))


class ContainerSource:
    """Every container of one engine (running, or all with ``all_containers``), or exactly
    the ones named in ``targets`` (names or IDs, whatever their state)."""

    def __init__(
        self, client: Any, *, all_containers: bool = False, targets: Sequence[str] = ()
    ) -> None:
        self.client = client
        self.all_containers = all_containers
        self.targets = tuple(targets)
        self._attrs: list[dict[str, Any]] = []

    def _containers(self) -> list[Any]:
        if not self.targets:
            return list(self.client.containers.list(all=self.all_containers))
        found: dict[str, Any] = {}
        for target in self.targets:
            try:
                container = self.client.containers.get(target)
            except docker.errors.NotFound:
                raise NotFoundError(f"targets: no container {target[:64]!r}") from None
            found.setdefault(container.id, container)
        return list(found.values())

    def chunks(self, stats: ScanStats) -> Iterator[Chunk]:
        """Env, command and labels of each container."""
        try:
            self._attrs = [c.attrs for c in self._containers()]
        except docker.errors.APIError as exc:
            raise UpstreamError(f"Docker engine error listing containers: {exc}") from exc
        except docker.errors.DockerException as exc:
            raise UpstreamUnavailableError(f"cannot reach the Docker engine: {exc}") from exc
        for attrs in self._attrs:
            for chunk in container_chunks(attrs):
                stats.bytes_scanned += len(chunk.data)
                yield chunk

    def finalize(self, findings: list[Finding]) -> list[Finding]:
        """Add the posture findings of every container."""
        out = list(findings)
        for attrs in self._attrs:
            out.extend(check_container(attrs))
        return out


def container_sources(request: ScanRequest) -> list[Source]:
    """The containers of the engine: only those named in ``request.targets`` when given."""
    # Only the named containers when targets are given: a scan (and its rotate_leaked)
    # does what it was asked, nothing more.
    return [
        ContainerSource(
            request.docker(), all_containers=request.all_containers, targets=request.targets
        )
    ]
