"""Known values: managed secrets recognised verbatim and encoded, from fingerprints only."""

from __future__ import annotations

import base64
import json
import random
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.unit.scan.credgen import AN, rnd
from vaultside.clock import FakeClock
from vaultside.errors import InvalidRequestError
from vaultside.kv.store import KVStore
from vaultside.scan.base import Chunk, Location, Severity
from vaultside.scan.detectors.known import KnownValueIndex
from vaultside.scan.scanner import Scanner
from vaultside.scan.service import ScanService
from vaultside.storage.sqlite import SqliteStorage


def chunk(text: str) -> Chunk:
    return Chunk(text.encode(), Location("path", "t", "notes.txt"))


def test_a_managed_value_no_rule_matches_is_found() -> None:
    value = "correct horse:" + rnd(random.Random(1), AN, 10)  # spaces and ':' split it
    idx = KnownValueIndex()
    assert idx.add("app/db", "password", 3, "current", value)
    text = f"nothing\nconnect with '{value}' please\n"
    assert Scanner()._chunk_findings(chunk(text)) == []  # no rule fires on it
    [f] = Scanner(known=idx)._chunk_findings(chunk(text))
    assert f.rule_id == "vaultside-managed-secret"
    assert f.known is not None
    assert (f.known.path, f.known.field, f.known.version, f.known.status) == (
        "app/db",
        "password",
        3,
        "current",
    )
    assert f.severity == Severity.CRITICAL and f.location.line == 2
    assert f.secret is not None and f.secret.reveal() == value


@pytest.mark.parametrize("encoding", ["base64", "base64url", "hex"])
def test_encoded_values_are_found(encoding: str) -> None:
    # "???" encodes to "Pz8/": the base64 and base64url forms differ, so each is its own match
    value = "???" + base64.b85encode(secrets.token_bytes(24)).decode()
    enc = {
        "base64": base64.b64encode(value.encode()).decode(),
        "base64url": base64.urlsafe_b64encode(value.encode()).decode().rstrip("="),
        "hex": value.encode().hex(),
    }[encoding]
    idx = KnownValueIndex()
    idx.add("ci/token", "value", 1, "previous", value)
    found = Scanner(known=idx)._chunk_findings(chunk(f"blob: {enc}\n"))
    assert any(f.known is not None and f.known.encoding == encoding for f in found)
    assert all(f.severity == Severity.HIGH for f in found if f.known)


def test_index_json_holds_no_plaintext_and_round_trips() -> None:
    values = [secrets.token_urlsafe(20) for _ in range(5)]
    idx = KnownValueIndex()
    for i, v in enumerate(values):
        idx.add(f"app/s{i}", "v", 1, "retired", v)
    text = json.dumps(idx.to_json())
    for v in values:
        assert v not in text
        assert base64.b64encode(v.encode()).decode() not in text
        assert v.encode().hex() not in text
        assert v[:8] not in text
    again = KnownValueIndex.from_json(json.loads(text))
    [f] = Scanner(known=again)._chunk_findings(chunk(f"x={values[2]}\n"))
    assert f.known is not None and f.known.path == "app/s2" and f.severity == Severity.MEDIUM


def test_different_indexes_use_different_keys() -> None:
    a, b = KnownValueIndex(), KnownValueIndex()
    a.add("p", "f", 1, "current", "same-value-123456")
    b.add("p", "f", 1, "current", "same-value-123456")
    assert a.to_json()["anchors"] != b.to_json()["anchors"]


def test_short_values_are_not_indexed() -> None:
    idx = KnownValueIndex()
    assert not idx.add("p", "f", 1, "current", "short")
    assert idx.skipped == 1


@pytest.mark.parametrize(
    "bad", [[], {"algorithm": "x"}, {"algorithm": "blake2b-128-keyed/anchor-v1"}]
)
def test_malformed_index_is_rejected(bad: object) -> None:
    with pytest.raises(InvalidRequestError):
        KnownValueIndex.from_json(bad)


@pytest.fixture
async def kv(tmp_path: Path) -> AsyncIterator[KVStore]:
    storage = SqliteStorage(tmp_path / "kv.db")
    await storage.open()
    try:
        yield KVStore(storage, clock=FakeClock())
    finally:
        await storage.close()


async def test_service_index_from_kvstore_names_version_status(kv: KVStore) -> None:
    vals = [secrets.token_urlsafe(18) for _ in range(3)]
    for v in vals:
        await kv.put("app/api", {"token": v})
    service = ScanService(values=kv, docker_factory=lambda: None, clock=FakeClock())
    idx = await service.known_index()
    scanner = Scanner(known=idx)
    statuses = []
    for v in vals:
        [f] = scanner._chunk_findings(chunk(f"leaked {v}\n"))
        assert f.known is not None
        statuses.append((f.known.version, f.known.status, f.severity))
    assert statuses == [
        (1, "retired", Severity.MEDIUM),
        (2, "previous", Severity.HIGH),
        (3, "current", Severity.CRITICAL),
    ]
