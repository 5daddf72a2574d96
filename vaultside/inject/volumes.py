"""Volumes of the Docker volume plugin: create, mount (admit → resolve → tmpfs), unmount (wipe).

Concurrency: one ``asyncio.Lock`` per volume serialises mount/unmount of the same volume;
different volumes proceed in parallel. State is saved after every change.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from vaultside.broker.base import ResolvedSecret, SecretSource
from vaultside.clock import Clock, SystemClock
from vaultside.errors import (
    ConflictError,
    InternalError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    VaultsideError,
)
from vaultside.inject import tmpfs
from vaultside.inject.admission import AdmissionPolicy, ContainerFacts
from vaultside.inject.audit import InjectAuditLog
from vaultside.inject.render import render_volume
from vaultside.inject.roles import Role, RoleBook
from vaultside.inject.spec import VolumeSpec, parse_volume_options
from vaultside.inject.state import PluginState, VolumeRecord
from vaultside.refs import parse_ref

log = logging.getLogger(__name__)
_VOLUME_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class ContainerLookup(Protocol):
    """Finds the container(s) a volume is being mounted for."""

    async def containers_for_volume(self, volume: str, driver: str) -> list[ContainerFacts]:
        """Containers that mount ``volume`` and are starting."""
        ...


async def resolve_values(source: SecretSource, spec: VolumeSpec) -> dict[str, str]:
    """Resolve every reference of ``spec``; errors name the option that used the reference."""
    return {ref: got.value for ref, got in (await resolve_secrets(source, spec)).items()}


async def resolve_secrets(source: SecretSource, spec: VolumeSpec) -> dict[str, ResolvedSecret]:
    """Like ``resolve_values``, keeping each reference's version (and lease) too."""
    refs = list(spec.refs)
    many = getattr(source, "resolve_many", None)
    if many is not None:
        try:
            got: dict[str, ResolvedSecret] = await many(refs)
            return {ref: got[ref] for ref in refs}
        except VaultsideError as exc:
            if len(refs) == 1:
                raise _named(spec, refs[0], exc) from exc
            # fall through: resolve one by one to name the option whose reference failed
    out: dict[str, ResolvedSecret] = {}
    for ref in refs:
        try:
            out[ref] = await source.resolve(parse_ref(ref))
        except VaultsideError as exc:
            raise _named(spec, ref, exc) from exc
    return out


def _named(spec: VolumeSpec, ref: str, exc: VaultsideError) -> VaultsideError:
    # SECURITY: the server's messages never include values; we only add option and ref.
    return type(exc)(f"{spec.option_for(ref)}: {ref}: {exc.message}")


class VolumeManager:
    """The volume plugin's logic, independent of the HTTP protocol."""

    def __init__(
        self,
        *,
        state: PluginState,
        mount_root: Path,
        containers: ContainerLookup,
        roles: RoleBook,
        admission: AdmissionPolicy,
        sources: Callable[[Role], SecretSource],
        audit: InjectAuditLog,
        driver: str,
        clock: Clock | None = None,
    ) -> None:
        self.state = state
        self.mount_root = mount_root
        self.containers = containers
        self.roles = roles
        self.admission = admission
        self.sources = sources
        self.audit = audit
        self.driver = driver
        self.clock = clock or SystemClock()
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    def volume_lock(self, name: str) -> asyncio.Lock:
        """The lock mount/unmount hold for ``name`` (re-delivery writes under it too)."""
        return self._lock(name)

    def _record(self, name: str) -> VolumeRecord:
        rec = self.state.volumes.get(name)
        if rec is None:
            raise NotFoundError(f"no such volume: {name[:128]}")
        return rec

    async def recover(self) -> None:
        """After a restart: keep mounts that survived, forget the rest, unmount strays."""
        self.state.load()
        known: set[str] = set()
        for rec in self.state.volumes.values():
            alive = False
            if rec.mountpoint:
                alive = await asyncio.to_thread(tmpfs.is_mountpoint, Path(rec.mountpoint))
            if alive:
                known.add(rec.mountpoint)
                try:  # mounts of a plugin version that left them writable
                    await asyncio.to_thread(tmpfs.set_readonly, Path(rec.mountpoint), True)
                except InternalError as exc:
                    log.warning("recovered mount stays writable", extra={"error": exc.message})
                log.info("recovered mount", extra={"volume": rec.name})
            else:
                rec.mountpoint, rec.mount_ids = "", []
        if self.mount_root.is_dir():
            for child in self.mount_root.iterdir():
                if str(child) not in known:
                    await asyncio.to_thread(tmpfs.wipe_and_unmount, child)
        await asyncio.to_thread(self.state.save)

    async def create(self, name: str, options: dict[str, str]) -> None:
        """Register a volume after validating its options (nothing is mounted yet)."""
        if not _VOLUME_NAME.match(name):
            raise InvalidRequestError(f"invalid volume name {name[:64]!r}")
        parse_volume_options(options)
        async with self._lock(name):
            old = self.state.volumes.get(name)
            if old is not None:
                if old.options != options:
                    raise ConflictError(f"volume {name} exists with different options")
                return
            self.state.volumes[name] = VolumeRecord(name, dict(options), self.clock.now())
            await asyncio.to_thread(self.state.save)

    async def remove(self, name: str) -> None:
        """Forget a volume; refused while it is mounted."""
        async with self._lock(name):
            rec = self._record(name)
            if rec.mount_ids:
                raise ConflictError(f"volume {name} is in use")
            if rec.mountpoint:
                await asyncio.to_thread(tmpfs.wipe_and_unmount, Path(rec.mountpoint))
            del self.state.volumes[name]
            await asyncio.to_thread(self.state.save)

    def get(self, name: str) -> VolumeRecord:
        """A volume's record; ``NotFoundError`` if unknown."""
        return self._record(name)

    def list(self) -> list[VolumeRecord]:
        """Every volume."""
        return list(self.state.volumes.values())

    async def _admit(self, name: str, spec: VolumeSpec) -> tuple[Role, ContainerFacts]:
        started = self.clock.monotonic()
        found = await self.containers.containers_for_volume(name, self.driver)
        if not found:
            raise PermissionDeniedError(f"cannot identify the container mounting volume {name}")
        roles: set[str] = set()
        chosen: tuple[Role, ContainerFacts] | None = None
        for facts in found:
            client = f"container:{facts.id[:12]}"
            try:
                role = self.roles.role_for(facts)
                role.check_refs((spec.option_for(r), r) for r in spec.refs)
            except PermissionDeniedError as exc:
                await self._audit_denial(name, client, exc.message, {}, started)
                raise
            decision = await self.admission.evaluate(facts)
            extra = {
                o.rule: f"{o.action}:{'hit' if o.triggered else 'ok'}" for o in decision.outcomes
            }
            extra["role"] = role.name
            for warning in decision.warnings:
                log.warning("admission warning", extra={"volume": name, "reason": warning})
            if not decision.allowed:
                reason = (
                    f"admission denied for container {facts.name or facts.id[:12]}: "
                    + "; ".join(decision.denials)
                )
                await self._audit_denial(name, client, reason, extra, started)
                raise PermissionDeniedError(reason)
            await self.audit.record(
                operation="inject.admit",
                path=f"inject/volumes/{name}",
                status=200,
                client=client,
                extra=extra,
                started=started,
            )
            roles.add(role.name)
            chosen = (role, facts)
        if len(roles) > 1 or chosen is None:
            raise PermissionDeniedError(
                f"volume {name} is mounted by containers of different roles"
            )
        return chosen

    async def _audit_denial(
        self, name: str, client: str, reason: str, extra: dict[str, str], started: float
    ) -> None:
        await self.audit.record(
            operation="inject.admit",
            path=f"inject/volumes/{name}",
            status=403,
            client=client,
            error=reason,
            extra=extra,
            started=started,
        )

    async def mount(self, name: str, mount_id: str) -> str:
        """Admit the container, resolve, write files onto a fresh tmpfs; return the mountpoint."""
        started = self.clock.monotonic()
        async with self._lock(name):
            rec = self._record(name)
            spec = parse_volume_options(rec.options)
            role, facts = await self._admit(name, spec)
            values = await resolve_values(self.sources(role), spec)
            files = render_volume(spec, values)
            del values
            uid_default, gid_default = facts.numeric_user
            uid = spec.uid if spec.uid is not None else (uid_default or 0)
            gid = (
                spec.gid
                if spec.gid is not None
                else (gid_default if gid_default is not None else uid)
            )
            target = Path(rec.mountpoint) if rec.mountpoint else self.mount_root / name
            # A recorded mount that vanished (unmounted behind our back) is mounted afresh.
            fresh = not rec.mountpoint or not await asyncio.to_thread(tmpfs.is_mountpoint, target)
            try:
                if fresh:
                    await asyncio.to_thread(
                        tmpfs.mount_tmpfs,
                        target,
                        size_bytes=spec.size_bytes,
                        uid=uid,
                        gid=gid,
                        dir_mode=tmpfs.dir_mode_for(spec.mode),
                    )
                await asyncio.to_thread(_write_all, target, files, uid, gid, spec.mode)
            except BaseException:
                if fresh:
                    await asyncio.to_thread(tmpfs.wipe_and_unmount, target)
                raise
            finally:
                files.clear()
            rec.mountpoint = str(target)
            if mount_id not in rec.mount_ids:
                rec.mount_ids.append(mount_id)
            await asyncio.to_thread(self.state.save)
            elapsed_ms = round((self.clock.monotonic() - started) * 1000, 1)
            log.info(
                "volume mounted",
                extra={"volume": name, "files": len(spec.files), "ms": elapsed_ms},
            )
            return rec.mountpoint

    async def unmount(self, name: str, mount_id: str) -> None:
        """Drop one user of the volume; the last one wipes and unmounts the tmpfs."""
        async with self._lock(name):
            rec = self._record(name)
            if mount_id in rec.mount_ids:
                rec.mount_ids.remove(mount_id)
            if not rec.mount_ids and rec.mountpoint:
                # SECURITY: zero and delete every file, then unmount: nothing is left anywhere.
                await asyncio.to_thread(tmpfs.wipe_and_unmount, Path(rec.mountpoint))
                rec.mountpoint = ""
            await asyncio.to_thread(self.state.save)


def _write_all(target: Path, files: dict[str, bytes], uid: int, gid: int, mode: int) -> None:
    tmpfs.require_tmpfs(target)
    with tmpfs.writable(target):
        for fname, data in files.items():
            tmpfs.write_atomic(target, fname, data, uid=uid, gid=gid, mode=mode)
