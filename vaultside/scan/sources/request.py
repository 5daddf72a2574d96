"""What a scan source factory gets (``ScanRequest``) and the factory's type.

A source kind ("image", "containers", "path", ...) is one module with its ``Source`` class and
a factory ``(ScanRequest) -> list[Source]``; ``vaultside.wiring.scan`` maps kinds to
factories (``SCAN_SOURCES`` for the CLI, ``SERVER_SCAN_SOURCES`` for scans run in the server).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vaultside.scan.base import Source
from vaultside.scan.sources.content import Limits


def _no_engine() -> Any:
    from vaultside.errors import InvalidRequestError

    raise InvalidRequestError("this scan has no Docker engine")


@dataclass(frozen=True)
class ScanRequest:
    """One scan's targets, and how its sources reach what they read."""

    targets: Sequence[str] = ()
    # The Docker engine client, created on first use (only engine-backed kinds call it).
    docker: Callable[[], Any] = _no_engine
    # How deep to open nested archives; None: each source's default.
    limits: Limits | None = None
    # ``containers``: stopped ones too.
    all_containers: bool = False
    # Kind-specific options (``registry``: platform, ca_file, plain_http).
    options: Mapping[str, Any] = field(default_factory=dict)


SourceFactory = Callable[[ScanRequest], list[Source]]
