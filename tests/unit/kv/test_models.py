"""Model JSON shapes (docs/api-contract.md) and secret-free reprs."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from vaultside.clock import rfc3339
from vaultside.kv.models import SECRET_TYPES, SecretMeta, SecretVersion, VersionMeta

T = 1_700_000_000.25


def test_rfc3339() -> None:
    assert rfc3339(T) == "2023-11-14T22:13:20.250000Z"
    assert rfc3339(0) == "1970-01-01T00:00:00.000000Z"


def test_version_meta_json() -> None:
    live = VersionMeta(3, T, None, False)
    assert live.to_json() == {
        "version": 3,
        "created_time": "2023-11-14T22:13:20.250000Z",
        "deletion_time": None,
        "destroyed": False,
    }
    deleted = VersionMeta(4, T, T + 1, True).to_json()
    assert deleted["deletion_time"] == "2023-11-14T22:13:21.250000Z"
    assert deleted["destroyed"] is True


def test_secret_meta_json() -> None:
    meta = SecretMeta(
        path="app/db",
        secret_type="password",
        current_version=2,
        oldest_version=1,
        max_versions=0,
        cas_required=False,
        created_time=T,
        updated_time=T + 2,
        custom_metadata={"owner": "a"},
        versions={2: VersionMeta(2, T + 2, None, False), 1: VersionMeta(1, T, None, False)},
    )
    doc = meta.to_json()
    assert set(doc) == {
        "path",
        "type",
        "current_version",
        "oldest_version",
        "max_versions",
        "cas_required",
        "created_time",
        "updated_time",
        "custom_metadata",
        "versions",
    }
    assert doc["type"] == "password"
    assert list(doc["versions"]) == ["1", "2"]  # type: ignore[call-overload]


def test_secret_meta_reads_back_from_its_json() -> None:
    # The one model serves the server (to_json) and a client (from_json): a round trip through
    # the wire shape loses nothing, microseconds included.
    meta = SecretMeta(
        path="app/db",
        secret_type="token",
        current_version=2,
        oldest_version=1,
        max_versions=3,
        cas_required=True,
        created_time=T,
        updated_time=T + 2.5,
        custom_metadata={"owner": "a"},
        versions={1: VersionMeta(1, T, T + 1, False), 2: VersionMeta(2, T + 2.5, None, True)},
    )
    wire = json.loads(json.dumps(meta.to_json()))
    assert SecretMeta.from_json(wire) == meta
    assert SecretMeta.from_json(wire).to_json() == wire
    assert VersionMeta.from_json(wire["versions"]["1"]) == meta.versions[1]
    with pytest.raises(ValidationError):
        SecretMeta.from_json({**wire, "created_time": "yesterday"})


def test_secret_version_hides_values() -> None:
    value = "do-not-print-" + "x" * 8
    sv = SecretVersion("app/db", {"password": value}, VersionMeta(1, T, None, False), "password")
    assert value not in repr(sv) and value not in str(sv)
    assert "password" in repr(sv)
    assert sv.to_json() == {"data": {"password": value}, "metadata": sv.meta.to_json()}


def test_secret_types() -> None:
    assert "generic" in SECRET_TYPES and len(set(SECRET_TYPES)) == 6
