"""``/v1/scans``: leak scans run inside the server (known values included), and the known-value
index for client-side scans.

- ``POST /v1/scans`` ``{"kind": "image"|"containers", "targets": [...], "all": false,
  "rotate_leaked": false}`` → 202 with the record (poll it); needs ``scan`` on ``scans``.
  ``containers`` with ``targets`` scans only those containers (names or IDs), so
  ``rotate_leaked`` and ``on_leak`` act only on what was found in them. With
  ``rotate_leaked`` each leaked current managed secret is rotated through the rotation service
  if the token has ``rotate`` on ``rotation/<path>`` (checked per secret once the scan is done);
  the record's ``rotations`` says what happened to each.
- ``GET /v1/scans/{id}`` → the record with redacted findings; ``scan`` on ``scans``.
- ``GET /v1/scans`` → every known scan, newest first, without findings; ``scan`` on ``scans``.
  Periodic container scans (``scan.periodic_interval``) are stored, so any worker lists them.
- ``GET /v1/scans/known-index`` → keyed fingerprints, no plaintext; ``scan`` on
  ``scans/known-index``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import Field

from vaultside.api.body import json_response, read_model
from vaultside.api.models import StrictModel
from vaultside.api.responses import Response
from vaultside.api.spec import Json, Operation, add_operations, path_param
from vaultside.api.state import METRICS, SERVICES, authorize
from vaultside.scan.leaks import Requester
from vaultside.scan.service import ScanService

SCAN_SERVICE = web.AppKey("scan_service", ScanService)


class ScanBody(StrictModel):
    """``POST /v1/scans``."""

    kind: Literal["image", "containers"]
    targets: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=512)]], Field(max_length=100)
    ] = []
    all: bool = False
    rotate_leaked: bool = False


class ScanList(Response):
    """Every known scan, newest first, without findings (``finding_count`` instead)."""

    scans: list[dict[str, Any]]


async def start_scan(request: web.Request) -> web.Response:
    """Start a scan; poll ``GET /v1/scans/{id}``."""
    info = await authorize(request, "scans", "scan")
    body = await read_model(request, ScanBody)
    requester = None
    if body.rotate_leaked:
        authorizer = request.app[SERVICES].authorizer

        async def may_rotate(path: str) -> bool:
            return "rotate" in await authorizer.capabilities(info, f"rotation/{path}")

        requester = Requester(info.accessor, tuple(info.policies), may_rotate)
    record = await request.app[SCAN_SERVICE].start(
        body.kind, body.targets, all_containers=body.all, rotate_leaked=requester
    )
    return json_response(record.to_json(), status=202)


async def get_scan(request: web.Request) -> web.Response:
    """A scan's state and findings (values redacted)."""
    await authorize(request, "scans", "scan")
    return json_response(await request.app[SCAN_SERVICE].find(request.match_info["id"]))


async def list_scans(request: web.Request) -> web.Response:
    """Every known scan (this process's and stored periodic ones), newest first, no findings."""
    await authorize(request, "scans", "scan")
    return json_response(ScanList(scans=await request.app[SCAN_SERVICE].summaries()))


async def known_index(request: web.Request) -> web.Response:
    """A fresh known-value index (new key each time) for ``vaultside scan --known-from-server``."""
    # SECURITY: fingerprints only, but guessable values could be tested offline with the key:
    # a capability of its own.
    await authorize(request, "scans/known-index", "scan")
    index = await request.app[SCAN_SERVICE].known_index()
    return json_response(index.to_json())


async def _service_ctx(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[SCAN_SERVICE].close()


_OBJECT: Json = {"type": "object"}
OPERATIONS = (
    Operation("POST", "/v1/scans", "Start a leak scan in the server (known values included); "
              "rotate_leaked rotates each leaked current managed secret the token may rotate "
              "(rotate on rotation/<path>, checked per secret) that has a rotation policy; "
              "policies with on_leak: rotate are rotated by any scan.", "scan on scans",
              start_scan, body=ScanBody, response=_OBJECT, status=202, errors=(400, 403)),
    Operation("GET", "/v1/scans", "Every known scan, newest first, without findings "
              "(finding_count instead): this process's and stored periodic container scans.",
              "scan on scans", list_scans, response=ScanList, errors=(403,)),
    Operation("GET", "/v1/scans/known-index", "Keyed fingerprints of managed values (no "
              "plaintext) for client-side scans.", "scan on scans/known-index", known_index,
              response=_OBJECT, errors=(403,)),
    Operation("GET", "/v1/scans/{id}", "A scan's state, redacted findings and leak rotations "
              "(periodic scans: from storage, on any server).", "scan on scans", get_scan,
              response=_OBJECT, errors=(403, 404), params=(path_param("id"),)),
)  # fmt: skip


def add_routes(app: web.Application) -> None:
    """Register the scan routes over the scan service wiring built (``Services.scans``)."""
    service = app[SERVICES].scans
    if service is None:
        raise RuntimeError("Services.scans is unset: build Services with vaultside.wiring")
    app[SCAN_SERVICE] = service
    if service.metrics is not None:
        for collector in service.metrics.collectors():
            app[METRICS].registry.register(collector)
    app.cleanup_ctx.append(_service_ctx)
    add_operations(app, OPERATIONS)
