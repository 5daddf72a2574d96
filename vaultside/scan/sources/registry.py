"""Images straight from a registry, without a daemon: manifest, config and layers streamed.

The manifest (an index resolved to one platform) names the config and the layers; each layer
blob is streamed through ``layer_chunks`` as it downloads (digest checked at its end) and is
never written to disk; memory stays bounded by the reader buffers. Findings carry the layer
digest and the history entry that created the layer, as for local images.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

from vaultside.errors import InvalidRequestError
from vaultside.scan.base import Chunk, Finding, Location, ScanStats, Source
from vaultside.scan.sources.archive import ArchiveError, Counting
from vaultside.scan.sources.content import ARCHIVE_ERRORS, BLOCK, Limits
from vaultside.scan.sources.distribution import RegistryClient
from vaultside.scan.sources.imageref import Credentials, Reference, credentials_for
from vaultside.scan.sources.layers import Attribution, config_chunks, image_info, layer_chunks
from vaultside.scan.sources.request import ScanRequest


class RegistrySource:
    """One image reference on a registry (``HOST/REPO:TAG`` or ``@sha256:...``)."""

    kind = "registry"

    def __init__(
        self,
        reference: str,
        *,
        platform: str | None = None,
        ca_file: Path | None = None,
        plain_http: bool = False,
        credentials: Credentials | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.ref = Reference.parse(reference)
        self.target = reference.strip()
        self.platform = platform
        self.limits = limits or Limits()
        if platform is not None and platform.count("/") not in (1, 2):
            raise InvalidRequestError(f"bad platform {platform!r} (want os/arch[/variant])")
        self._client = RegistryClient(
            self.ref,
            credentials=credentials or credentials_for(self.ref.host),
            ca_file=ca_file,
            plain_http=plain_http,
        )
        self._seen = Attribution()

    def chunks(self, stats: ScanStats) -> Iterator[Chunk]:
        """Every layer's files as they download, then the config (Env, Labels, history)."""
        try:
            yield from self._chunks(stats)
        finally:
            self._client.close()

    def _chunks(self, stats: ScanStats) -> Iterator[Chunk]:
        manifest = self._client.manifest(self.platform)
        layers = [d for d in manifest["layers"] if isinstance(d, dict)]
        cfg = self._client.config(manifest)
        digests = [str(d.get("digest", "")) for d in layers]
        img = image_info(cfg, digests, digests, [self.target])
        self._seen.images = [img]
        stats.bytes_total = (stats.bytes_total or 0) + sum(int(d.get("size") or 0) for d in layers)
        template = Location(kind=self.kind, target=self.target, path="")
        for desc, digest in zip(layers, digests, strict=True):
            media = str(desc.get("mediaType", ""))
            if "nondistributable" in media or desc.get("urls"):
                stats.warn(f"{self.target}: layer {digest[:19]} is a foreign layer, not scanned")
                continue
            blob = self._client.open_blob(digest, int(desc.get("size") or 0) or None)
            try:
                stream = io.BufferedReader(Counting(blob, stats), BLOCK)
                yield from layer_chunks(
                    stream, digest, self._seen.layer(digest), template, stats, self.limits
                )
                blob.finish()
            except ARCHIVE_ERRORS as exc:
                raise ArchiveError(
                    f"{self.target}: layer {digest[:19]} is corrupt ({type(exc).__name__})"
                ) from exc
            finally:
                blob.close()
        yield from config_chunks(img, self.kind, self.target)

    def finalize(self, findings: list[Finding]) -> list[Finding]:
        """Layer digest, ``created_by`` and deleted/overwritten status for layer findings."""
        return self._seen.finalize(findings)


def registry_sources(request: ScanRequest) -> list[Source]:
    """One source per registry reference in ``request.targets``; ``request.options`` may hold
    ``platform``, ``ca_file`` and ``plain_http``."""
    opts = request.options
    return [
        RegistrySource(
            t,
            platform=opts.get("platform"),
            ca_file=opts.get("ca_file"),
            plain_http=bool(opts.get("plain_http", False)),
            limits=request.limits,
        )
        for t in request.targets
    ]
