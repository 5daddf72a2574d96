"""The sidecar loop on a fake clock, writing into a real tmpfs (/dev/shm)."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from vaultside.broker.base import ResolvedSecret
from vaultside.client import VaultsideClient
from vaultside.clock import FakeClock
from vaultside.errors import (
    DeadlineExceededError,
    InvalidRequestError,
    PermissionDeniedError,
    SealedError,
    UpstreamUnavailableError,
)
from vaultside.inject import tmpfs
from vaultside.inject.sidecar import (
    ConsumerReporter,
    EtagWatcher,
    Sidecar,
    SidecarConfig,
    default_consumer_id,
    kv_holdings,
)
from vaultside.inject.spec import parse_volume_options
from vaultside.refs import parse_ref

from .conftest import MemorySecrets

SPEC = parse_volume_options(
    {
        "secret.password": "kv:app/db#password",
        "secret.app.env": "USER=kv:app/db#user;TOKEN=kv:app/api#token",
        "format.app.env": "env",
    }
)


@pytest.fixture
def shm_dir() -> Iterator[Path]:
    base = Path("/dev/shm")
    if not base.is_dir() or not tmpfs.is_tmpfs(base):
        pytest.skip("no tmpfs at /dev/shm")
    path = base / f"vs-sidecar-{os.getpid()}-{os.urandom(4).hex()}"
    path.mkdir()
    yield path
    shutil.rmtree(path)


class CountingReload:
    """A reload action that records when it ran (what the app would observe)."""

    def __init__(self) -> None:
        self.runs = 0
        self.ran = asyncio.Event()

    async def run(self) -> None:
        self.runs += 1
        self.ran.set()

    def describe(self) -> str:
        return "count"


def make(shm_dir: Path, secrets: MemorySecrets, clock: FakeClock, reload: CountingReload | None):
    cfg = SidecarConfig(
        output_dir=shm_dir, spec=SPEC, poll_interval=0.25, refresh_interval=60.0,
        ready_file=shm_dir.parent / f"{shm_dir.name}.ready", reload=reload,
    )  # fmt: skip
    feed = EtagWatcher(secrets, EtagWatcher.paths_of(SPEC))
    return Sidecar(cfg, secrets, feed=feed, clock=clock)


@pytest.fixture
def secrets() -> MemorySecrets:
    s = MemorySecrets()
    s.put("app/db", user="app", password="one")
    s.put("app/api", token="t1")
    return s


async def test_once_renders_everything_and_signals_ready(shm_dir: Path, secrets) -> None:
    sidecar = make(shm_dir, secrets, FakeClock(), None)
    await sidecar.start()
    assert (shm_dir / "password").read_text() == "one"
    assert (shm_dir / "app.env").read_text() == "USER=app\nTOKEN=t1\n"
    assert stat.S_IMODE((shm_dir / "password").stat().st_mode) == 0o400
    assert sidecar.ready.is_set() and sidecar.config.ready_file is not None
    assert sidecar.config.ready_file.read_text() == "ready\n"
    sidecar.stop_cleanup()


async def test_change_rerenders_only_changed_files_and_reloads_once(shm_dir: Path, secrets) -> None:
    clock, reload = FakeClock(), CountingReload()
    sidecar = make(shm_dir, secrets, clock, reload)
    stop = asyncio.Event()
    task = asyncio.create_task(sidecar.run(stop))
    while not sidecar.ready.is_set():
        await asyncio.sleep(0)
    before_env = (shm_dir / "app.env").stat().st_ino
    await clock.advance(1.0)  # nothing changed: 304s only
    assert reload.runs == 0 and sidecar.renders == 1
    secrets.put("app/db", user="app", password="two")
    await clock.advance(0.25)
    await asyncio.wait_for(reload.ran.wait(), 5)  # file writes run in a worker thread
    assert (shm_dir / "password").read_text() == "two"
    assert (shm_dir / "app.env").stat().st_ino == before_env  # unchanged file not rewritten
    await clock.advance(1.0)
    assert reload.runs == 1
    stop.set()
    await clock.advance(0.25)
    await asyncio.wait_for(task, 1)


async def test_failure_keeps_last_files_and_recovers(shm_dir: Path, secrets) -> None:
    clock, reload = FakeClock(), CountingReload()
    sidecar = make(shm_dir, secrets, clock, reload)
    stop = asyncio.Event()
    task = asyncio.create_task(sidecar.run(stop))
    while not sidecar.ready.is_set():
        await asyncio.sleep(0)
    secrets.put("app/api", token="t2")
    secrets.denied.add("app/api")
    await clock.advance(0.25)
    assert (shm_dir / "app.env").read_text() == "USER=app\nTOKEN=t1\n"
    secrets.denied.clear()  # no further change: the failed render alone must be retried
    await clock.advance(5.0)
    await asyncio.wait_for(reload.ran.wait(), 5)
    assert (shm_dir / "app.env").read_text() == "USER=app\nTOKEN=t2\n"
    stop.set()
    await clock.advance(60)
    await asyncio.wait_for(task, 1)


async def test_refuses_non_tmpfs_unless_overridden(tmp_path: Path, secrets) -> None:
    if tmpfs.is_tmpfs(tmp_path):
        pytest.skip("tmp_path is tmpfs here")
    sidecar = make(tmp_path, secrets, FakeClock(), None)
    with pytest.raises(InvalidRequestError, match="not on tmpfs"):
        await sidecar.start()
    assert list(tmp_path.iterdir()) == []
    sidecar.config.allow_non_tmpfs = True
    await sidecar.start()
    assert (tmp_path / "password").read_text() == "one"


async def test_missing_secret_fails_start(shm_dir: Path, secrets) -> None:
    del secrets.data["app/api"]
    sidecar = make(shm_dir, secrets, FakeClock(), None)
    with pytest.raises(Exception, match=r"secret.app.env: kv:app/api#token"):
        await sidecar.start()
    assert not sidecar.ready.is_set()


class RecordingReporter:
    """A ``HoldingsReporter`` that keeps every report, or refuses while ``refuse`` is set."""

    def __init__(self) -> None:
        self.reports: list[dict[str, int]] = []
        self.refuse = False

    async def report(self, holdings: dict[str, int]) -> None:
        if self.refuse:
            raise PermissionDeniedError("permission denied")
        self.reports.append(holdings)


async def test_reports_held_versions_after_each_render_and_periodically(
    shm_dir: Path, secrets
) -> None:
    clock, reload, reporter = FakeClock(), CountingReload(), RecordingReporter()
    sidecar = make(shm_dir, secrets, clock, reload)
    sidecar.reporter = reporter
    sidecar.config.report_interval = 10.0
    stop = asyncio.Event()
    task = asyncio.create_task(sidecar.run(stop))
    while not sidecar.ready.is_set() or not reporter.reports:
        await asyncio.sleep(0)
    assert reporter.reports == [{"app/db": 1, "app/api": 1}]
    secrets.put("app/db", user="app", password="two")
    await clock.advance(0.25)
    await asyncio.wait_for(reload.ran.wait(), 5)
    assert reporter.reports[-1] == {"app/db": 2, "app/api": 1} and len(reporter.reports) == 2
    await clock.advance(5.0)
    assert len(reporter.reports) == 2  # nothing changed, interval not yet over
    await clock.advance(5.5)
    assert len(reporter.reports) == 3 and reporter.reports[-1] == {"app/db": 2, "app/api": 1}
    stop.set()
    await clock.advance(0.25)
    await asyncio.wait_for(task, 1)


async def test_refused_report_never_fails_rendering(
    shm_dir: Path, secrets, caplog: pytest.LogCaptureFixture
) -> None:
    clock, reload, reporter = FakeClock(), CountingReload(), RecordingReporter()
    reporter.refuse = True
    sidecar = make(shm_dir, secrets, clock, reload)
    sidecar.reporter = reporter
    sidecar.config.report_interval = 1.0
    stop = asyncio.Event()
    task = asyncio.create_task(sidecar.run(stop))
    while not sidecar.ready.is_set():
        await asyncio.sleep(0)
    secrets.put("app/db", user="app", password="two")
    await clock.advance(0.25)
    await asyncio.wait_for(reload.ran.wait(), 5)
    assert (shm_dir / "password").read_text() == "two"
    await clock.advance(3.0)
    assert sidecar.reports == 0 and sidecar.holdings == {"app/db": 2, "app/api": 1}
    failures = [r for r in caplog.records if r.getMessage() == "consumer report failed"]
    assert len(failures) == 1  # logged once per failing streak
    reporter.refuse = False
    await clock.advance(1.0)
    assert sidecar.reports == 1 and reporter.reports == [{"app/db": 2, "app/api": 1}]
    stop.set()
    await clock.advance(0.25)
    await asyncio.wait_for(task, 1)


def test_holdings_and_consumer_ids() -> None:
    one = ResolvedSecret(parse_ref("kv:a#x"), "v", "3")
    pinned = ResolvedSecret(parse_ref("kv:a#x@1"), "v", "1")
    vault = ResolvedSecret(parse_ref("vault:corp/secret/data/b#y"), "v", "2")
    assert kv_holdings({"kv:a#x": one, "kv:a#x@1": pinned, "vault:...": vault}) == {"a": 3}
    assert kv_holdings({"kv:a#x@1": pinned}) == {"a": 1}
    assert default_consumer_id().startswith("sidecar-")
    with pytest.raises(InvalidRequestError, match="consumer"):
        ConsumerReporter(VaultsideClient("http://127.0.0.1:1", token="t"), "bad id/")


class DownFor:
    """A source that is unreachable (503 / connection refused) for its first ``n`` calls."""

    def __init__(
        self, inner: MemorySecrets, n: int, exc: Exception, clock: FakeClock | None = None
    ) -> None:
        self.inner, self.left, self.exc, self.clock = inner, n, exc, clock
        self.up_at: float | None = None  # fake time of the first successful call

    async def resolve(self, ref):  # type: ignore[no-untyped-def]
        if self.left > 0:
            self.left -= 1
            raise self.exc
        if self.up_at is None and self.clock is not None:
            self.up_at = self.clock.monotonic()
        return await self.inner.resolve(ref)


async def test_start_waits_for_a_server_that_comes_up_later(shm_dir: Path, secrets) -> None:
    clock = FakeClock()
    cfg = SidecarConfig(output_dir=shm_dir, spec=SPEC, timeout=60.0)
    down = UpstreamUnavailableError("cannot reach vaultside at http://x: ClientConnectorError")
    source = DownFor(secrets, 5, down, clock)
    sidecar = Sidecar(cfg, source, clock=clock)
    task = asyncio.create_task(sidecar.start())
    while not task.done():
        await clock.advance(0.1)  # (keeps moving while files are written in a thread)
    task.result()
    assert (shm_dir / "password").read_text() == "one"
    # five failures: steps of at most 0.1, 0.2, 0.4, 0.8, 1.6 s
    assert sidecar.ready.is_set() and source.up_at is not None and source.up_at <= 3.2


async def test_start_gives_up_at_its_deadline(shm_dir: Path, secrets) -> None:
    clock = FakeClock()
    cfg = SidecarConfig(output_dir=shm_dir, spec=SPEC, timeout=5.0)
    sidecar = Sidecar(cfg, DownFor(secrets, 10**6, SealedError()), clock=clock)
    task = asyncio.create_task(sidecar.start())
    while not task.done():
        await clock.advance(0.1)
    with pytest.raises(DeadlineExceededError, match="first render: still failing"):
        task.result()
    assert 5.0 <= clock.monotonic() <= 5.5 and not sidecar.ready.is_set()
    assert list(shm_dir.iterdir()) == []
