"""Scan kinds: where the bytes come from (sources) and how findings are shown (reporters).

- ``SCAN_SOURCES``: every kind the CLI can scan (``vaultside scan <kind> ...``);
- ``SERVER_SCAN_SOURCES``: the kinds an API caller may ask the server for. Only engine-backed
  ones: a path or archive on the server's filesystem is not for API callers to read;
- ``SCAN_REPORTERS``: ``--format`` → reporter.

Each entry imports its module when first used: the docker SDK, the registry client and rich
(the table alone costs ~70 ms of a scan's start-up) load only for the kind that needs them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from vaultside.registry import lookup
from vaultside.scan.base import Reporter, Source
from vaultside.scan.sources.request import ScanRequest, SourceFactory

# (a terminal is the destination: colours and its width) → the reporter.
ReporterFactory = Callable[[bool], Reporter]


def _lazy(module: str, name: str) -> SourceFactory:
    """The factory ``module.name``, imported on its first call."""

    def factory(request: ScanRequest) -> list[Source]:
        made: SourceFactory = getattr(importlib.import_module(module), name)
        return made(request)

    return factory


_image = _lazy("vaultside.scan.sources.image", "image_sources")
_containers = _lazy("vaultside.scan.sources.container", "container_sources")

SCAN_SOURCES: dict[str, SourceFactory] = {
    "image": _image,
    "containers": _containers,
    "registry": _lazy("vaultside.scan.sources.registry", "registry_sources"),
    "archive": _lazy("vaultside.scan.sources.archive", "archive_sources"),
    "path": _lazy("vaultside.scan.sources.path", "path_sources"),
}

SERVER_SCAN_SOURCES: dict[str, SourceFactory] = {
    "image": _image,
    "containers": _containers,
}


def _table(tty: bool) -> Reporter:
    from vaultside.scan.reporters.table import TableReporter

    return TableReporter(width=None, color=True) if tty else TableReporter()


def _json(tty: bool) -> Reporter:
    from vaultside.scan.reporters.json import JsonReporter

    return JsonReporter()


def _sarif(tty: bool) -> Reporter:
    from vaultside.scan.reporters.sarif import SarifReporter

    return SarifReporter()


SCAN_REPORTERS: dict[str, ReporterFactory] = {
    "table": _table,
    "json": _json,
    "sarif": _sarif,
}


def scan_sources(kind: str, request: ScanRequest) -> list[Source]:
    """The sources of a CLI scan of ``kind``; ``InvalidRequestError`` for an unknown kind."""
    return lookup(SCAN_SOURCES, kind, "scan kind")(request)


def build_reporter(fmt: str, *, tty: bool = False) -> Reporter:
    """The reporter for ``--format``; ``tty``: a table gets colours and the terminal's width."""
    return lookup(SCAN_REPORTERS, fmt, "report format")(tty)
