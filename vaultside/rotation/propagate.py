"""Re-delivery bookkeeping: which consumer (plugin mount, sidecar) holds which version.

Consumers report what they hold with a heartbeat (``POST /v1/consumers``):
``{"consumer": id, "kind": "sidecar"|"plugin", "container": str?, "holdings": {path: version}}``.
Records live at ``consumers/<id>`` of the rotation view (no values, only versions). A consumer
not heard from for ``stale_after`` seconds (``rotation.consumer_gone_after``: its container was
deleted, or it lost the server) is shown as ``gone``; after ``ttl`` seconds of silence
(``rotation.consumer_ttl``) its record is deleted, the next time a status lists it.
After a rotation is promoted, sidecars pick the new version up through their ETag poll and
report it on their next heartbeat; the status of a secret lists every consumer with the
version it holds and whether it is the store's current one.

``Redelivery`` is the hook the engine calls after promotion: it wakes in-process waiters
(``wait_for``), which the benchmark and same-process plugin mounts use.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from dataclasses import asdict, dataclass, field

from vaultside.clock import Clock
from vaultside.errors import ConflictError, InvalidRequestError
from vaultside.kv.paths import validate_path
from vaultside.storage.base import StorageBackend

PREFIX = "consumers/"
_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_MAX_HOLDINGS = 1000


@dataclass
class Consumer:
    """A consumer's last report."""

    consumer: str
    kind: str
    container: str | None
    seen: float
    holdings: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        """JSON-ready fields."""
        return asdict(self)


def parse_heartbeat(obj: object, now: float) -> Consumer:
    """Validate a heartbeat body; ``InvalidRequestError`` naming the bad field."""
    if not isinstance(obj, dict):
        raise InvalidRequestError("body must be a JSON object")
    unknown = set(obj) - {"consumer", "kind", "container", "holdings"}
    if unknown:
        raise InvalidRequestError(f"{sorted(unknown)[0]}: unknown field")
    consumer, kind = obj.get("consumer"), obj.get("kind", "sidecar")
    if not isinstance(consumer, str) or not _ID.match(consumer):
        raise InvalidRequestError("consumer: must match [A-Za-z0-9._:-]{1,128}")
    if kind not in ("sidecar", "plugin", "other"):
        raise InvalidRequestError("kind: must be sidecar, plugin or other")
    container = obj.get("container")
    if container is not None and (not isinstance(container, str) or not _ID.match(container)):
        raise InvalidRequestError("container: must match [A-Za-z0-9._:-]{1,128}")
    holdings = obj.get("holdings", {})
    if not isinstance(holdings, dict) or len(holdings) > _MAX_HOLDINGS:
        raise InvalidRequestError(f"holdings: must be an object of at most {_MAX_HOLDINGS} paths")
    clean: dict[str, int] = {}
    for path, version in holdings.items():
        validate_path(path)
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise InvalidRequestError("holdings: versions must be non-negative integers")
        clean[path] = version
    return Consumer(consumer, str(kind), container, now, clean)


class ConsumerRegistry:
    """Stores heartbeats and answers "who holds which version of this path"."""

    def __init__(
        self,
        storage: StorageBackend,
        clock: Clock,
        *,
        stale_after: float = 120.0,
        ttl: float = 86400.0,
    ) -> None:
        self._storage = storage
        self._clock = clock
        self.stale_after = stale_after
        self.ttl = max(ttl, stale_after)
        self._waiters: dict[str, list[tuple[int, asyncio.Future[None]]]] = {}

    async def heartbeat(self, consumer: Consumer) -> None:
        """Record what ``consumer`` holds now."""
        await self._storage.put(PREFIX + consumer.consumer, json.dumps(consumer.to_json()).encode())

    async def holders(self, path: str) -> list[dict[str, object]]:
        """Every consumer that reported holding ``path``, with its version and freshness."""
        now = self._clock.now()
        out: list[dict[str, object]] = []
        for key in await self._storage.list(PREFIX):
            rec = await self._storage.get(key)
            if rec is None:
                continue
            c = Consumer(**json.loads(rec.value))
            if now - c.seen > self.ttl:
                # Expired: forget it, unless it reported again since we read it.
                with contextlib.suppress(ConflictError):
                    await self._storage.delete(key, expect_revision=rec.revision)
                continue
            if path in c.holdings:
                gone = now - c.seen > self.stale_after
                out.append(
                    {
                        "consumer": c.consumer,
                        "kind": c.kind,
                        "container": c.container,
                        "version": c.holdings[path],
                        "seen": c.seen,
                        "stale": gone,
                        "state": "gone" if gone else "live",
                    }
                )
        return out

    async def delivered(self, path: str, version: int) -> None:
        """Engine hook: ``path`` is now at ``version``; wake in-process waiters."""
        waiters = self._waiters.get(path, [])
        keep = []
        for want, fut in waiters:
            if version >= want and not fut.done():
                fut.set_result(None)
            elif not fut.done():
                keep.append((want, fut))
        self._waiters[path] = keep

    async def wait_for(self, path: str, version: int) -> None:
        """Return once a rotation of ``path`` promoted ``version`` or later (in this process)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(path, []).append((version, fut))
        await fut
