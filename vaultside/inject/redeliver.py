"""Re-delivery into running containers that hold secrets through the volume plugin.

``MountRefresher`` runs inside ``vaultside plugin``. Every ``interval`` it resolves the
references of every mounted volume (one ``/v1/resolve`` call per role), re-renders the files
and, for each file whose content changed, writes it atomically (temp file + rename, same
owner and mode) onto the volume's tmpfs. Then it hands each container's reload action from
its ``io.vaultside.on-rotate`` label (old name ``vaultside.on-rotate`` still accepted) to a
``ReloadQueue`` (background, bounded concurrency,
per-action timeout, coalesced per container), so a slow restart never delays re-delivery:

- ``signal:HUP`` (or ``HUP`` / ``SIGHUP``): send that signal to the container's main process;
- ``restart``: restart the container;
- ``none`` or no label: nothing (the app re-reads the file on its own).

After each change (and every ``report_every`` seconds) it reports to the server which KV
version each container holds (``POST /v1/consumers``, consumer ``plugin-<container id>``),
which ``vaultside rotation status`` shows. The role's token needs ``update`` on
``consumers/*`` for that; without it the report is skipped with a warning.

While the server is unreachable, sealed or failing (5xx), passes back off with full jitter
(``vaultside.retry``, up to ``MAX_BACKOFF``) instead of asking every ``interval``; the polling
period itself is jittered, so plugins on many hosts do not poll in lockstep.

``MountRefresher`` is a ``vaultside.rotation.base.Redelivery``: inside ``vaultside serve``
wiring tells it about each promoted rotation (``delivered``), and the next pass starts at
once instead of at the next poll. A separate ``vaultside plugin`` process only polls.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from vaultside.broker.base import ResolvedSecret
from vaultside.client import HttpSecretSource
from vaultside.clock import Clock, SystemClock
from vaultside.errors import VaultsideError
from vaultside.inject import tmpfs
from vaultside.inject.admission import ContainerFacts
from vaultside.inject.docker_api import DockerEngine
from vaultside.inject.labels import ON_ROTATE
from vaultside.inject.reload import DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT, ReloadQueue
from vaultside.inject.render import render_volume
from vaultside.inject.roles import Role
from vaultside.inject.signal import parse_signal
from vaultside.inject.spec import VolumeSpec, parse_volume_options
from vaultside.inject.volumes import VolumeManager
from vaultside.lifecycle import first_of
from vaultside.numeric import is_ascii_int
from vaultside.refs import parse_ref
from vaultside.retry import Backoff, is_retryable, jitter

log = logging.getLogger(__name__)
LABEL = ON_ROTATE
MAX_BACKOFF = 30.0  # longest wait between passes while the server is unavailable


@dataclass
class _Tracked:
    """What the refresher remembers about one mounted volume (digests, never values)."""

    mount_ids: tuple[str, ...]
    containers: list[ContainerFacts]
    role: Role
    digests: dict[str, bytes] = field(default_factory=dict)
    holdings: dict[str, int] = field(default_factory=dict)


def reload_action(label: str | None) -> tuple[str, str | None]:
    """``("signal", "SIGHUP")``, ``("restart", None)`` or ``("none", None)`` from a label."""
    text = (label or "").strip()
    if text in ("", "none"):
        return "none", None
    if text == "restart":
        return "restart", None
    sig = text.removeprefix("signal:")
    return "signal", parse_signal(sig).name


class MountRefresher:
    """Keeps plugin-mounted files current and reloads their containers after a change."""

    def __init__(
        self,
        manager: VolumeManager,
        engine: DockerEngine,
        *,
        clock: Clock | None = None,
        interval: float = 0.5,
        report_every: float = 30.0,
        reload_concurrency: int = DEFAULT_CONCURRENCY,
        reload_timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.manager = manager
        self.engine = engine
        self.clock = clock or SystemClock()
        self.interval = interval
        self.report_every = report_every
        self.reloads = 0
        self._tracked: dict[str, _Tracked] = {}
        self._last_report = 0.0
        self._unavailable = False  # a resolve in this pass failed with a retryable error
        self._wake = asyncio.Event()  # a rotation was promoted: pass now, not at the next poll
        self.reload_queue = ReloadQueue(
            concurrency=reload_concurrency, timeout=reload_timeout, clock=self.clock
        )
        # Test/benchmark hook: called with (volume, changed files) after a re-delivery.
        self.on_delivered: Callable[[str, list[str]], Awaitable[None]] | None = None

    async def _track(self, name: str, mount_ids: tuple[str, ...]) -> _Tracked | None:
        known = self._tracked.get(name)
        if known is not None and known.mount_ids == mount_ids:
            return known
        containers = await self.engine.containers_for_volume(name, self.manager.driver)
        if not containers:
            return None
        role = self.manager.roles.role_for(containers[0])
        tracked = _Tracked(mount_ids, containers, role)
        if known is not None:
            tracked.digests = known.digests
        self._tracked[name] = tracked
        return tracked

    async def poll(self) -> int:
        """One pass over every mounted volume; returns how many containers got new files."""
        live: dict[str, tuple[Path, _Tracked]] = {}
        for rec in self.manager.list():
            if not rec.mountpoint or not rec.mount_ids:
                continue
            tracked = await self._track(rec.name, tuple(rec.mount_ids))
            if tracked is not None:
                live[rec.name] = (Path(rec.mountpoint), tracked)
        for gone in set(self._tracked) - set(live):
            del self._tracked[gone]
        by_role: dict[str, list[str]] = {}
        for name, (_, tracked) in live.items():
            by_role.setdefault(tracked.role.name, []).append(name)
        changed = 0
        for names in by_role.values():
            changed += await self._refresh_role(names, live)
        if self.clock.monotonic() - self._last_report >= self.report_every:
            await self._report(live)
        return changed

    async def _refresh_role(self, names: list[str], live: dict[str, tuple[Path, _Tracked]]) -> int:
        role = live[names[0]][1].role
        source = self.manager.sources(role)
        specs = {n: parse_volume_options(self.manager.get(n).options) for n in names}
        refs = list(dict.fromkeys(r for s in specs.values() for r in s.refs))
        try:
            if isinstance(source, HttpSecretSource):
                got = await source.resolve_many(refs)
            else:
                got = {r: await source.resolve(parse_ref(r)) for r in refs}
        except VaultsideError as exc:
            log.warning("re-delivery resolve failed", extra={"error": exc.message})
            self._unavailable = self._unavailable or is_retryable(exc)
            return 0
        # Files only; reload actions go to the queue and run in the background: a container
        # that takes 10 s to restart must not delay the next pass for every other volume.
        reload: dict[str, ContainerFacts] = {}
        for name in names:
            target, tracked = live[name]
            if await self._deliver(name, target, tracked, specs[name], got):
                reload |= {facts.id: facts for facts in tracked.containers}
        if reload:
            self._last_report = 0.0  # report the new versions on this pass
        for facts in reload.values():
            self.reload_queue.submit(facts.id, functools.partial(self._reload, facts))
        return len(reload)

    async def _deliver(
        self,
        name: str,
        target: Path,
        tracked: _Tracked,
        spec: VolumeSpec,
        got: dict[str, ResolvedSecret],
    ) -> bool:
        files = render_volume(spec, {r: got[r].value for r in spec.refs})
        changed: list[str] = []
        try:
            async with self.manager.volume_lock(name):
                rec = self.manager.get(name)
                if rec.mountpoint != str(target):
                    return False  # unmounted meanwhile
                for fname, data in files.items():
                    digest = hashlib.sha256(data).digest()
                    old = tracked.digests.get(fname)
                    if old is None:
                        old = await asyncio.to_thread(_digest_on_disk, target / fname)
                    if old == digest:
                        tracked.digests[fname] = digest
                        continue
                    await asyncio.to_thread(_rewrite, target, fname, data, spec.mode)
                    tracked.digests[fname] = digest
                    changed.append(fname)
        finally:
            files.clear()
        tracked.holdings = {
            parse_ref(r).path: int(got[r].version)
            for r in spec.refs
            if r.startswith("kv:") and is_ascii_int(got[r].version)
        }
        if not changed:
            return False
        log.info("re-delivered rotated secrets", extra={"volume": name, "files": changed})
        if self.on_delivered is not None:
            await self.on_delivered(name, changed)
        return True

    async def _reload(self, facts: ContainerFacts) -> None:
        try:
            action, sig = reload_action(facts.labels.get(LABEL))
        except VaultsideError as exc:
            log.warning(
                "bad reload label", extra={"container": facts.id[:12], "error": exc.message}
            )
            return
        try:
            if action == "signal" and sig is not None:
                await self.engine.signal_container(facts.id, sig)
            elif action == "restart":
                await self.engine.restart_container(facts.id)
            else:
                return
        except VaultsideError as exc:
            log.warning("reload failed", extra={"container": facts.id[:12], "error": exc.message})
            return
        self.reloads += 1

    async def _report(self, live: dict[str, tuple[Path, _Tracked]]) -> None:
        self._last_report = self.clock.monotonic()
        for _, tracked in live.values():
            source = self.manager.sources(tracked.role)
            if not isinstance(source, HttpSecretSource) or not tracked.holdings:
                continue
            for facts in tracked.containers:
                try:
                    await source.client.report_consumer(
                        f"plugin-{facts.id[:12]}",
                        "plugin",
                        tracked.holdings,
                        container=facts.name or facts.id[:12],
                    )
                except VaultsideError as exc:
                    log.warning("consumer report refused", extra={"error": exc.message})

    async def delivered(self, path: str, version: int) -> None:
        """Rotation hook (``Redelivery``): start the next pass now instead of at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Poll forever (cancel to stop); back off while the server is unavailable."""
        backoff = Backoff(base=self.interval, cap=max(MAX_BACKOFF, self.interval))
        while True:
            self._unavailable = False
            self._wake.clear()
            try:
                await self.poll()
            except VaultsideError as exc:
                log.warning("re-delivery pass failed", extra={"error": exc.message})
                self._unavailable = self._unavailable or is_retryable(exc)
            except Exception as exc:
                log.error("re-delivery pass errored", extra={"error_type": type(exc).__name__})
            if self._unavailable:
                delay = backoff.next()
            else:
                backoff.reset()
                delay = jitter(self.interval)
            await first_of(self.clock.sleep(delay), self._wake.wait())

    async def close(self) -> None:
        """After ``run`` was cancelled: cancel reload actions still running."""
        await self.reload_queue.close()


def _digest_on_disk(path: Path) -> bytes | None:
    try:
        return hashlib.sha256(path.read_bytes()).digest()
    except OSError:
        return None


def _rewrite(target: Path, fname: str, data: bytes, mode: int) -> None:
    # SECURITY: only onto the volume's tmpfs, keeping the delivered file's owner.
    tmpfs.require_tmpfs(target)
    try:
        st = os.stat(target / fname)
        uid, gid = st.st_uid, st.st_gid
    except FileNotFoundError:
        dst = os.stat(target)
        uid, gid = dst.st_uid, dst.st_gid
    with tmpfs.writable(target):
        tmpfs.write_atomic(target, fname, data, uid=uid, gid=gid, mode=mode)
