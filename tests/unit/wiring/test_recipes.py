"""The recipes of docs/architecture.md, each proven: a tiny extra implementation is registered
through its registry, runs end to end through the real entry point, and is removed again.

- add a storage kind   → ``STORAGE_KINDS``, run by ``build_services`` (write, read back);
- add a rotation target → ``TARGET_KINDS``, run by the rotation service ``build_services`` made;
- add a secret source  → ``SOURCE_KINDS``, resolved through ``POST /v1/resolve``;
- add a scan source    → ``SERVER_SCAN_SOURCES``, scanned by the server's scan service.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from vaultside.api.app import create_app
from vaultside.broker.base import ResolvedSecret, SecretSource
from vaultside.config.settings import Settings
from vaultside.crypto.seal import init_key_file
from vaultside.errors import InvalidRequestError
from vaultside.refs import SecretRef
from vaultside.registry import lookup, register
from vaultside.rotation.base import RotationContext, Target
from vaultside.rotation.targets import TargetFactory
from vaultside.rotation.targets.kv import KvTarget
from vaultside.scan.base import Chunk, Finding, Location, ScanStats, Source
from vaultside.scan.sources.request import ScanRequest
from vaultside.services import Services
from vaultside.storage.base import Op, StorageBackend
from vaultside.storage.sqlite import SqliteStorage
from vaultside.wiring.rotation import TARGET_KINDS
from vaultside.wiring.scan import SERVER_SCAN_SOURCES
from vaultside.wiring.server import build_services
from vaultside.wiring.sources import SOURCE_KINDS
from vaultside.wiring.storage import STORAGE_KINDS


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = Settings(data_dir=tmp_path, rotation={"scheduler": False})  # type: ignore[arg-type]
    init_key_file(settings.resolve(settings.seal.key_file))
    return settings


@pytest.fixture
async def unsealed() -> AsyncIterator[list[Services]]:
    """Services opened and unsealed by the test; closed afterwards."""
    opened: list[Services] = []
    yield opened
    for services in opened:
        await services.close()


async def _open(services: Services, opened: list[Services]) -> Services:
    opened.append(services)
    await services.open()
    await services.barrier.unseal()
    return services


def _registered(registry: dict[str, Any], kind: str, factory: Any) -> Iterator[None]:
    """``factory`` registered as ``kind`` for one test (the previous entry restored after)."""
    before = registry.get(kind)
    register(registry, kind, factory, replace=before is not None)
    try:
        yield
    finally:
        if before is None:
            del registry[kind]
        else:
            registry[kind] = before


# -- add a storage kind ------------------------------------------------------------------------


class RecordingStorage(SqliteStorage):
    """The recipe's tiny backend: SQLite that remembers which keys it was asked to write."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.written: list[str] = []

    async def put(self, key: str, value: bytes, *, expect_revision: int | None = None) -> int:
        self.written.append(key)
        return await super().put(key, value, expect_revision=expect_revision)

    async def write_batch(self, ops: Sequence[Op]) -> None:
        self.written.extend(op.key for op in ops)
        await super().write_batch(ops)


async def test_recipe_add_a_storage_kind(settings: Settings, unsealed: list[Services]) -> None:
    made: list[RecordingStorage] = []

    def recording(s: Settings) -> StorageBackend:
        made.append(RecordingStorage(s.resolve(Path("recording.db"))))
        return made[-1]

    # A settings kind outside the Literal (the recipe adds it there too): copied, not parsed.
    chosen = settings.model_copy(
        update={"storage": settings.storage.model_copy(update={"kind": "recording"})}
    )
    for _ in _registered(STORAGE_KINDS, "recording", recording):
        services = await _open(build_services(chosen), unsealed)
        assert services.storage is made[0]
        await services.kv.put("app/db", {"password": secrets.token_hex(8)})
        assert (await services.kv.get("app/db")).meta.version == 1
        assert any("app/db" in key for key in made[0].written), made[0].written
    with pytest.raises(InvalidRequestError, match="'recording' is not available"):
        build_services(chosen)


# -- add a rotation target ---------------------------------------------------------------------


class RecordingTarget:
    """The recipe's tiny target: does what ``kv`` does and records each step it was run."""

    kind = "kv"

    def __init__(self, steps: list[str]) -> None:
        self.steps = steps
        self.inner: Target = KvTarget()

    async def create_pending(self, ctx: RotationContext) -> None:
        self.steps.append("create_pending")

    async def set(self, ctx: RotationContext) -> None:
        self.steps.append("set")

    async def test(self, ctx: RotationContext) -> None:
        self.steps.append("test")

    async def finish(self, ctx: RotationContext) -> None:
        self.steps.append("finish")

    async def rollback(self, ctx: RotationContext) -> None:
        self.steps.append("rollback")


async def test_recipe_add_a_rotation_target(settings: Settings, unsealed: list[Services]) -> None:
    # A policy's ``target.kind`` is validated by the policy model (the API schema), so this
    # test registers its target under a kind that model knows.
    steps: list[str] = []

    def recording(spec: Any, ctx: TargetFactory) -> Target:
        return RecordingTarget(steps)

    for _ in _registered(TARGET_KINDS, "kv", recording):
        services = await _open(build_services(settings), unsealed)
        rotation = services.rotation
        assert rotation is not None
        _, root = await services.tokens.create_root()
        doc = {"every": "1h", "generator": {"kind": "token"}, "target": {"kind": "kv"}}
        await rotation.set_policy("app/api", doc, by=root)
        await rotation.rotate_now("app/api")
        assert steps == ["create_pending", "set", "test", "finish"]
        assert (await services.kv.get("app/api")).meta.version == 1
    assert TARGET_KINDS["kv"] is not recording


# -- add a secret source -----------------------------------------------------------------------


class StaticSource:
    """The recipe's tiny source: one value for every reference of its scheme."""

    def __init__(self, value: str) -> None:
        self.value = value

    async def resolve(self, ref: SecretRef) -> ResolvedSecret:
        return ResolvedSecret(ref, self.value, "1")


async def test_recipe_add_a_secret_source(settings: Settings) -> None:
    # A reference's scheme is parsed by ``vaultside.refs`` (kv: and vault:); with no brokers
    # configured, ``vault:`` has no source, so the recipe's source serves it here.
    value = secrets.token_urlsafe(16)

    def static(s: Settings, services: Services) -> SecretSource:
        return StaticSource(value)

    ref = "vault:demo/static/app#password"
    for _ in _registered(SOURCE_KINDS, "vault", static):
        services = build_services(settings)
        client: TestClient[Any, Any] = TestClient(TestServer(create_app(services)))
        await client.start_server()
        try:
            token, _ = await services.tokens.create_root()
            auth = {"Authorization": f"Bearer {token}"}
            async with client.post("/v1/resolve", json={"refs": [ref]}, headers=auth) as resp:
                assert resp.status == 200
                assert (await resp.json())["values"][ref]["value"] == value
        finally:
            await client.close()
    assert "vault" not in build_services(settings).sources  # no brokers: no vault: source


# -- add a scan source -------------------------------------------------------------------------


class TextSource:
    """The recipe's tiny scan source: each target is a text to scan."""

    def __init__(self, target: str, text: str) -> None:
        self.target = target
        self.text = text

    def chunks(self, stats: ScanStats) -> Iterator[Chunk]:
        yield Chunk(self.text.encode(), Location("text", self.target, "note.txt"))

    def finalize(self, findings: list[Finding]) -> list[Finding]:
        return findings


async def test_recipe_add_a_scan_source(settings: Settings, unsealed: list[Services]) -> None:
    password = secrets.token_urlsafe(24)

    def text_sources(request: ScanRequest) -> list[Source]:
        return [TextSource(t, f"DB_PASSWORD={password}\n") for t in request.targets]

    for _ in _registered(SERVER_SCAN_SOURCES, "text", text_sources):
        services = await _open(build_services(settings), unsealed)
        scans = services.scans
        assert scans is not None
        await services.kv.put("app/db", {"password": password})
        record = await scans.wait((await scans.start("text", ["notes"])).id)
        assert record.status == "done", record.error
        known = [f for f in record.findings if f.known is not None]
        assert [(f.known.path, f.known.status) for f in known if f.known] == [("app/db", "current")]
    with pytest.raises(InvalidRequestError, match="'text' is not available"):
        lookup(SERVER_SCAN_SOURCES, "text", "scan kind")
