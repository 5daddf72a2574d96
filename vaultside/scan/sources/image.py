"""Local images through the engine: ``docker save`` streamed over the API into the archive reader.

Nothing is written to disk: the save stream is read as it arrives (memory stays bounded).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import docker.errors

from vaultside.errors import (
    InvalidRequestError,
    NotFoundError,
    UpstreamError,
    UpstreamUnavailableError,
)
from vaultside.scan.base import Chunk, Finding, ScanStats, Source
from vaultside.scan.sources.archive import ImageArchiveSource
from vaultside.scan.sources.content import Limits
from vaultside.scan.sources.request import ScanRequest


class _IterStream(io.RawIOBase):
    """A file-like view of an iterator of byte strings (the API's streamed response)."""

    def __init__(self, it: Iterator[bytes]) -> None:
        self._it = it
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]
        while not self._buf:
            try:
                self._buf = next(self._it)
            except StopIteration:
                return 0
            except docker.errors.DockerException as exc:
                raise UpstreamError(f"Docker engine stream failed: {exc}") from exc
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def resolve_image_id(client: Any, ref: str) -> str:
    """The image id of a name or id; ``NotFoundError`` / ``UpstreamUnavailableError``."""
    try:
        return str(client.images.get(ref).id)
    except docker.errors.ImageNotFound as exc:
        raise NotFoundError(f"image {ref[:200]} not found in the engine") from exc
    except docker.errors.APIError as exc:
        raise UpstreamError(f"Docker engine error reading image {ref[:200]}: {exc}") from exc
    except docker.errors.DockerException as exc:
        raise UpstreamUnavailableError(f"cannot reach the Docker engine: {exc}") from exc


class ImageSource:
    """One local image, read through ``GET /images/{name}/get`` as a stream."""

    def __init__(self, client: Any, name: str, *, limits: Limits | None = None) -> None:
        self.client = client
        self.name = name
        self.limits = limits
        self._archive: ImageArchiveSource | None = None

    def chunks(self, stats: ScanStats) -> Iterator[Chunk]:
        """Chunks of every layer and the config of the image."""
        try:
            image = self.client.images.get(self.name)
            stats.bytes_total = (stats.bytes_total or 0) + int(image.attrs.get("Size") or 0)
            stream = self.client.api.get_image(image.id, chunk_size=1 << 20)
        except docker.errors.ImageNotFound as exc:
            raise NotFoundError(f"image {self.name} not found in the engine") from exc
        except docker.errors.APIError as exc:
            raise UpstreamError(f"Docker engine error reading image {self.name}: {exc}") from exc
        except docker.errors.DockerException as exc:
            raise UpstreamUnavailableError(f"cannot reach the Docker engine: {exc}") from exc
        self._archive = ImageArchiveSource(
            io.BufferedReader(_IterStream(iter(stream)), 1 << 20),
            kind="image",
            target=self.name,
            limits=self.limits,
        )
        yield from self._archive.chunks(stats)

    def finalize(self, findings: list[Finding]) -> list[Finding]:
        """Layer attribution, as for an archive."""
        return self._archive.finalize(findings) if self._archive else findings


def image_sources(request: ScanRequest) -> list[Source]:
    """One source per local image named in ``request.targets`` (read through the engine)."""
    if not request.targets:
        raise InvalidRequestError("an image scan needs at least one target")
    client = request.docker()
    return [ImageSource(client, t, limits=request.limits) for t in request.targets]
