"""The scan service the API and the admission hook call: scans run in the server, known values
included, off the event loop.

The kinds it can scan are handed in (``sources``: kind → factory, from
``vaultside.wiring.scan.SERVER_SCAN_SOURCES``): only engine-backed targets (images, containers),
because a path or archive on the server's filesystem is not something an API caller should be
able to read.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from vaultside.clock import Clock
from vaultside.errors import InvalidRequestError, NotFoundError, VaultsideError
from vaultside.kv.models import SecretMeta
from vaultside.lifecycle import TaskSet
from vaultside.registry import lookup
from vaultside.scan.base import Finding, Source
from vaultside.scan.detectors.known import KnownValueIndex
from vaultside.scan.detectors.rules import Rule
from vaultside.scan.leaks import Auditor, Requester, Rotator, rotate_leaks
from vaultside.scan.results import ScanMetrics, ScanRecord, ScanResults, created_of
from vaultside.scan.scanner import Allowlist, Scanner
from vaultside.scan.sources.image import resolve_image_id
from vaultside.scan.sources.request import ScanRequest, SourceFactory

log = logging.getLogger(__name__)


class ValueStore(Protocol):
    """What the service needs of ``KVStore``."""

    def all_values(self) -> Any:
        """Async iterator of (path, version, data) for every live version."""
        ...

    async def read_metadata(self, path: str) -> SecretMeta:
        """Metadata (current version, versions)."""
        ...


def version_status(meta: SecretMeta, version: int) -> str:
    """``current``, ``previous`` (the newest live version before current) or ``retired``."""
    if version == meta.current_version:
        return "current"
    older = [
        v
        for v, vm in meta.versions.items()
        if v < meta.current_version and not vm.destroyed and vm.deletion_time is None
    ]
    return "previous" if older and version == max(older) else "retired"


class ScanService:
    """Runs scans in-process; keeps the last ``max_records`` results; caches image verdicts."""

    def __init__(
        self,
        *,
        values: ValueStore | None,
        docker_factory: Callable[[], Any],
        clock: Clock,
        sources: Mapping[str, SourceFactory] | None = None,
        rules: list[Rule] | None = None,
        allowlist: Allowlist | None = None,
        baseline: frozenset[str] = frozenset(),
        max_records: int = 100,
        rotator: Rotator | None = None,
        audit: Auditor | None = None,
        results: ScanResults | None = None,
        metrics: ScanMetrics | None = None,
    ) -> None:
        self._values = values
        self._docker_factory = docker_factory
        self._docker: Any = None
        # Scan kind → source factory; the registry itself, so a kind added later is seen.
        self._kinds: Mapping[str, SourceFactory] = sources if sources is not None else {}
        self._clock = clock
        self._rules = rules
        self._allowlist = allowlist
        self._baseline = baseline
        self._max = max_records
        self._rotator = rotator
        self._audit = audit
        # Where periodic scans' records persist (any worker can answer for them), and their
        # metrics; both None when periodic scans are off.
        self.results = results
        self.metrics = metrics
        self._records: OrderedDict[str, ScanRecord] = OrderedDict()
        self._jobs = TaskSet()
        self._image_cache: OrderedDict[str, list[Finding]] = OrderedDict()

    def _client(self) -> Any:
        if self._docker is None:
            self._docker = self._docker_factory()
        return self._docker

    async def known_index(self) -> KnownValueIndex:
        """A fresh index (new key) of every live managed value; empty without a store."""
        if self._values is None:
            return KnownValueIndex()
        metas: dict[str, SecretMeta] = {}
        values = self._values

        async def status_of(path: str, version: int) -> str:
            if path not in metas:
                metas[path] = await values.read_metadata(path)
            return version_status(metas[path], version)

        return await KnownValueIndex.build(values.all_values(), status_of)

    def _sources(self, kind: str, targets: Sequence[str], all_containers: bool) -> list[Source]:
        request = ScanRequest(targets, docker=self._client, all_containers=all_containers)
        return lookup(self._kinds, kind, "scan kind")(request)

    async def _scan(
        self, kind: str, targets: Sequence[str], all_containers: bool, record: ScanRecord
    ) -> None:
        known = await self.known_index()
        record.known_values = len(known)
        scanner = Scanner(
            rules=self._rules, known=known, allowlist=self._allowlist, baseline=self._baseline
        )

        def run() -> tuple[list[Finding], int]:
            result = scanner.scan(self._sources(kind, targets, all_containers))
            return result.findings, result.suppressed

        record.findings, record.suppressed = await asyncio.to_thread(run)

    async def start(
        self,
        kind: str,
        targets: Sequence[str] = (),
        *,
        all_containers: bool = False,
        rotate_leaked: Requester | None = None,
        trigger: str = "api",
    ) -> ScanRecord:
        """Start a scan in the background; poll it with ``get``. Afterwards each leaked current
        managed secret is rotated if its policy says ``on_leak: rotate``, or, with
        ``rotate_leaked``, if that ``Requester`` may rotate it."""
        lookup(self._kinds, kind, "scan kind")
        if len(targets) > 100 or any(not t or len(t) > 512 for t in targets):
            raise InvalidRequestError("targets: 1 to 100 image names of at most 512 chars")
        record = ScanRecord(secrets.token_hex(8), kind, list(targets), self._clock.now())
        record.rotate_leaked = rotate_leaked is not None
        record.trigger = trigger
        self._records[record.id] = record
        while len(self._records) > self._max:
            self._records.popitem(last=False)

        async def job() -> None:
            try:
                await self._scan(kind, targets, all_containers, record)
                if rotate_leaked is not None or self._rotator is not None:
                    record.rotations = await rotate_leaks(
                        record.findings,
                        scan_id=record.id,
                        requester=rotate_leaked,
                        rotator=self._rotator,
                        audit=self._audit,
                        now=self._clock.now,
                    )
                record.status = "done"
            except VaultsideError as exc:
                record.status, record.error = "failed", exc.message
            except Exception as exc:
                log.exception("scan failed", extra={"scan_id": record.id})
                record.status, record.error = "failed", f"internal error ({type(exc).__name__})"
            finally:
                record.finished = self._clock.now()

        self._jobs.spawn(job(), name=f"scan-{record.id}")
        return record

    async def wait(self, scan_id: str) -> ScanRecord:
        """The record once its scan has finished."""
        record = self.get(scan_id)
        for task in list(self._jobs.tasks):
            if task.get_name() == f"scan-{scan_id}":
                await task
        return record

    def get(self, scan_id: str) -> ScanRecord:
        """A scan record; ``NotFoundError`` if unknown or expired."""
        try:
            return self._records[scan_id]
        except KeyError:
            raise NotFoundError(f"no scan {scan_id[:40]!r}") from None

    async def find(self, scan_id: str) -> dict[str, object]:
        """A record's API shape: this process's scans first, then stored periodic ones."""
        try:
            return self.get(scan_id).to_json()
        except NotFoundError:
            doc = None if self.results is None else await self.results.get(scan_id)
            if doc is None:
                raise
            return doc

    async def summaries(self) -> list[dict[str, object]]:
        """Every known scan, newest first, without findings (``finding_count`` instead)."""
        docs: dict[str, dict[str, object]] = {}
        if self.results is not None:
            docs = {str(d["id"]): d for d in await self.results.list()}
        for record in self._records.values():
            docs[record.id] = record.to_json()
        out = []
        for doc in docs.values():
            findings = doc.pop("findings", [])
            doc.pop("rotations", None)
            doc["finding_count"] = len(findings) if isinstance(findings, list) else 0
            out.append(doc)
        out.sort(key=created_of, reverse=True)
        return out

    async def image_findings(self, image_ref: str) -> list[Finding]:
        """Unresolved findings (after baseline and allowlist) of a local image, cached by id."""
        image_id = await asyncio.to_thread(resolve_image_id, self._client(), image_ref)
        if image_id in self._image_cache:
            self._image_cache.move_to_end(image_id)
            return self._image_cache[image_id]
        record = ScanRecord(secrets.token_hex(8), "image", [image_id], self._clock.now())
        await self._scan("image", [image_id], False, record)
        self._image_cache[image_id] = record.findings
        while len(self._image_cache) > 256:
            self._image_cache.popitem(last=False)
        return record.findings

    async def unresolved_findings(self, image_ref: str) -> int:
        """For the admission hook: how many unresolved leak findings ``image_ref`` has."""
        return len(await self.image_findings(image_ref))

    async def close(self) -> None:
        """Cancel running scans (and wait for them to end)."""
        await self._jobs.close()
        if self._docker is not None:
            await asyncio.to_thread(self._docker.close)
            self._docker = None
