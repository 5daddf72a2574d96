"""The sidecar: render secrets into a tmpfs directory, keep them fresh, tell the app.

Change detection is conditional polling: for every unpinned ``kv:`` reference the sidecar asks
``GET /v1/secrets/{path}`` with ``If-None-Match`` every ``poll_interval`` (a 304 costs the server
one revision lookup). References it cannot watch that way (``vault:``) are re-resolved every
``refresh_interval``. After a change everything is re-resolved, only files whose content changed
are rewritten (temp file + rename), then the reload action runs once.

After each render, and every ``report_interval`` in between, the sidecar reports which KV
version of each path it holds (``POST /v1/consumers``, kind ``sidecar``), which rotation
status shows. Reporting is best-effort: a refused or failed report is logged and never
fails or delays rendering. The token needs ``update`` on ``consumers/<consumer id>``.

Start-up order does not matter: the first render (``start``, and so ``--once``) retries a
server that is unreachable, sealed or answering 5xx with the shared backoff
(``vaultside.retry``: exponential, full jitter, one log line per step) until ``timeout``
(then ``DeadlineExceededError``). A 4xx (bad token, unknown path) fails at once. After the
first render, failures keep the last good files and are retried with the same backoff,
without a deadline; polling is jittered so a fleet of sidecars does not poll in lockstep.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from vaultside.broker.base import ResolvedSecret, SecretSource
from vaultside.client import NotModified, SecretData, VaultsideClient
from vaultside.clock import Clock, SystemClock
from vaultside.errors import InvalidRequestError, PermissionDeniedError, VaultsideError
from vaultside.inject import tmpfs
from vaultside.inject.render import render_volume
from vaultside.inject.signal import ReloadAction
from vaultside.inject.spec import VolumeSpec
from vaultside.inject.volumes import resolve_secrets
from vaultside.refs import parse_ref
from vaultside.retry import Backoff, RetryPolicy, jitter, retry

log = logging.getLogger(__name__)
DEFAULT_POLL_INTERVAL = 0.25
DEFAULT_REFRESH_INTERVAL = 300.0
MAX_BACKOFF = 30.0
DEFAULT_TIMEOUT = 300.0  # how long the first render waits for the server (--timeout)
_START_BASE, _START_CAP = 0.1, 2.0  # first render: short steps, it renders soon after the server
DEFAULT_REPORT_INTERVAL = 60.0  # the server shows a consumer as stale after 120 s
_CONSUMER_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")  # as the server checks it


class ChangeFeed(Protocol):
    """Says whether any watched secret may have changed since the previous call."""

    async def changed(self) -> bool:
        """True if something changed (the first call primes and returns False)."""
        ...


class SessionAuth(Protocol):
    """Keeps the client's token valid (``--auth jwt``: see ``inject.sidecar_auth``)."""

    async def start(self) -> None:
        """Log in; raises ``VaultsideError`` if that fails."""
        ...

    async def refresh(self) -> None:
        """Renew or log in again if due; never raises."""
        ...

    def expired(self) -> None:
        """The server refused the token: log in again at the next refresh."""
        ...

    async def close(self) -> None:
        """Give the token up (revoke it); never raises."""
        ...


class HoldingsReporter(Protocol):
    """Tells the server which secret versions this consumer holds."""

    async def report(self, holdings: dict[str, int]) -> None:
        """Send ``{path: version}``; raises ``VaultsideError`` if the server refused it."""
        ...


class ConsumerReporter:
    """Reports holdings through ``POST /v1/consumers`` as one sidecar consumer."""

    def __init__(
        self, client: VaultsideClient, consumer: str, container: str | None = None
    ) -> None:
        if not _CONSUMER_ID.match(consumer):
            raise InvalidRequestError("consumer: must match [A-Za-z0-9._:-]{1,128}")
        self.client = client
        self.consumer = consumer
        self.container = container

    async def report(self, holdings: dict[str, int]) -> None:
        """Send one heartbeat with ``holdings`` (paths and versions, never values)."""
        await self.client.report_consumer(
            self.consumer, "sidecar", holdings, container=self.container
        )


def default_consumer_id() -> str:
    """``sidecar-<hostname>`` (in a container, its short id), limited to the id alphabet."""
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:100] or "unknown"
    return f"sidecar-{host}"


def kv_holdings(resolved: dict[str, ResolvedSecret]) -> dict[str, int]:
    """``{kv path: version}`` of resolved references; unpinned ones win over pinned ones."""
    out: dict[str, int] = {}
    for got in sorted(resolved.values(), key=lambda g: g.ref.version is None):
        if got.ref.scheme == "kv" and got.version.isdigit():
            out[got.ref.path] = int(got.version)
    return out


class SecretReader(Protocol):
    """The slice of ``VaultsideClient`` the ETag watcher needs."""

    async def read_secret(
        self, path: str, *, version: int | None = None, etag: str | None = None
    ) -> object:
        """A secret, or a ``NotModified`` marker for a matching ``etag``."""
        ...


class EtagWatcher:
    """Conditional polling of ``kv:`` paths with ETags."""

    def __init__(self, reader: SecretReader, paths: list[str]) -> None:
        self.reader = reader
        self.etags: dict[str, str | None] = dict.fromkeys(paths)
        self._primed = False

    @staticmethod
    def paths_of(spec: VolumeSpec) -> list[str]:
        """Unpinned local secret paths a spec depends on."""
        refs = [parse_ref(r) for r in spec.refs]
        return list(dict.fromkeys(r.path for r in refs if r.scheme == "kv" and r.version is None))

    async def _poll(self, path: str) -> bool:
        got = await self.reader.read_secret(path, etag=self.etags[path])
        if isinstance(got, NotModified):
            return False
        # SECURITY: the body's values are dropped here; values come from resolve().
        etag = got.etag if isinstance(got, SecretData) else None
        changed = etag is None or etag != self.etags[path]
        self.etags[path] = etag
        return changed

    async def changed(self) -> bool:
        results = await asyncio.gather(*(self._poll(p) for p in self.etags))
        primed, self._primed = self._primed, True
        return primed and any(results)


@dataclass(slots=True)
class SidecarConfig:
    """What the sidecar renders, where, and what it does after a change."""

    output_dir: Path
    spec: VolumeSpec
    poll_interval: float = DEFAULT_POLL_INTERVAL
    refresh_interval: float = DEFAULT_REFRESH_INTERVAL
    ready_file: Path | None = None
    allow_non_tmpfs: bool = False
    reload: ReloadAction | None = None
    report_interval: float = DEFAULT_REPORT_INTERVAL
    timeout: float | None = DEFAULT_TIMEOUT  # first render's deadline; None = wait forever
    uid: int = field(default_factory=os.getuid)
    gid: int = field(default_factory=os.getgid)


class Sidecar:
    """Renders a ``VolumeSpec`` with a ``SecretSource``; see the module docstring."""

    def __init__(
        self,
        config: SidecarConfig,
        source: SecretSource,
        *,
        feed: ChangeFeed | None = None,
        clock: Clock | None = None,
        reporter: HoldingsReporter | None = None,
        auth: SessionAuth | None = None,
    ) -> None:
        self.config = config
        self.source = source
        self.feed = feed
        self.clock = clock or SystemClock()
        self.reporter = reporter
        self.auth = auth
        self.ready = asyncio.Event()
        self.renders = 0
        self.reloads = 0
        self.reports = 0
        # {kv path: version} of what the files hold now (versions only, never values).
        self.holdings: dict[str, int] = {}
        self._digests: dict[str, bytes] = {}
        self._last_report: float | None = None
        self._report_failing = False
        self._logged_in = False

    def check_output_dir(self) -> None:
        """Refuse a directory that is not on tmpfs unless explicitly overridden."""
        out = self.config.output_dir
        if not out.is_dir():
            raise InvalidRequestError(f"output directory {out} does not exist")
        if self.config.allow_non_tmpfs:
            if not tmpfs.is_tmpfs(out):
                log.warning("writing secrets to a non-tmpfs directory (override given)")
            return
        tmpfs.require_tmpfs(out)

    async def render_once(self) -> list[str]:
        """Resolve and write every file whose content changed; returns their names."""
        spec = self.config.spec
        uid = spec.uid if spec.uid is not None else self.config.uid
        gid = spec.gid if spec.gid is not None else self.config.gid
        resolved = await resolve_secrets(self.source, spec)
        holdings = kv_holdings(resolved)
        files = render_volume(spec, {ref: got.value for ref, got in resolved.items()})
        del resolved
        changed: list[str] = []
        try:
            for name, data in files.items():
                # SECURITY: only a digest of the content is kept, to detect changes.
                digest = hashlib.sha256(data).digest()
                if self._digests.get(name) == digest:
                    continue
                await asyncio.to_thread(
                    tmpfs.write_atomic,
                    self.config.output_dir,
                    name,
                    data,
                    uid=uid,
                    gid=gid,
                    mode=spec.mode,
                )
                self._digests[name] = digest
                changed.append(name)
        finally:
            files.clear()
        self.holdings = holdings
        self.renders += 1
        return changed

    async def report(self) -> bool:
        """Report the held versions (best-effort: failures are logged); True if accepted."""
        if self.reporter is None or not self.holdings:
            return False
        self._last_report = self.clock.monotonic()
        try:
            await self.reporter.report(dict(self.holdings))
        except Exception as exc:
            if not self._report_failing:  # once per failing streak, not every interval
                message = exc.message if isinstance(exc, VaultsideError) else type(exc).__name__
                log.warning("consumer report failed", extra={"error": message})
            self._report_failing = True
            return False
        self._report_failing = False
        self.reports += 1
        return True

    def _report_due(self) -> bool:
        last = self._last_report
        return last is None or self.clock.monotonic() - last >= self.config.report_interval

    async def _first_render(self) -> None:
        if self.auth is not None and not self._logged_in:
            await self.auth.start()  # retried with the render: the server may not be up yet
            self._logged_in = True
        if self.feed is not None:
            # Prime first, so a change during the render is seen; a failure here is
            # reported by the render below with the option it concerns.
            with contextlib.suppress(VaultsideError):
                await self.feed.changed()
        await self.render_once()

    async def start(self) -> None:
        """Check the directory, render everything once (retrying an unavailable server until
        ``timeout``: ``DeadlineExceededError``), and signal readiness."""
        self.check_output_dir()
        policy = RetryPolicy(self.config.timeout, base=_START_BASE, cap=_START_CAP)
        await retry(self._first_render, what="first render", policy=policy, clock=self.clock)
        if self.config.ready_file is not None:
            await asyncio.to_thread(_write_ready, self.config.ready_file)
        self.ready.set()
        log.info("all secrets rendered", extra={"files": len(self.config.spec.files)})
        await self.report()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Start, then poll for changes until ``stop`` is set."""
        stop = stop or asyncio.Event()
        await self.start()
        last_refresh = self.clock.monotonic()
        backoff = Backoff(base=self.config.poll_interval, cap=MAX_BACKOFF)
        delay = jitter(self.config.poll_interval)
        pending = False  # a failed render is retried even if the feed has moved on
        while not stop.is_set():
            await self.clock.sleep(delay)
            if stop.is_set():
                break
            if self.auth is not None:
                await self.auth.refresh()
            try:
                due = pending or (
                    self.clock.monotonic() - last_refresh >= self.config.refresh_interval
                )
                if not due and (self.feed is None or not await self.feed.changed()):
                    backoff.reset()
                    delay = jitter(self.config.poll_interval)
                    if self._report_due():
                        await self.report()
                    continue
                last_refresh = self.clock.monotonic()
                changed = await self.render_once()
                await self.report()
                if changed and self.config.reload is not None:
                    await self.config.reload.run()
                    self.reloads += 1
                    log.info(
                        "reloaded",
                        extra={"files": changed, "action": self.config.reload.describe()},
                    )
                backoff.reset()
                delay, pending = jitter(self.config.poll_interval), False
            except VaultsideError as exc:
                pending = True
                if self.auth is not None and isinstance(exc, PermissionDeniedError):
                    self.auth.expired()
                # Keep serving the last good files; retry with backoff (full jitter).
                delay = backoff.next()
                log.warning(
                    "refresh failed", extra={"error": exc.message, "retry_in": round(delay, 3)}
                )
                if self._report_due():
                    await self.report()  # the last good files are still what the app holds

    def stop_cleanup(self) -> None:
        """Remove the readiness file (the rendered files stay for the app)."""
        if self.config.ready_file is not None:
            self.config.ready_file.unlink(missing_ok=True)


def _write_ready(path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("ready\n", encoding="utf-8")
    os.replace(tmp, path)
