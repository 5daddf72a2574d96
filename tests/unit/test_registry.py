"""``{kind: factory}`` registries: an unknown kind names itself and the known ones."""

from __future__ import annotations

from typing import get_args

import pytest

from vaultside.config.settings import SealSettings, StorageSettings
from vaultside.errors import InvalidRequestError
from vaultside.registry import lookup, register
from vaultside.scan.sources.request import ScanRequest
from vaultside.wiring.rotation import GENERATOR_KINDS, TARGET_KINDS
from vaultside.wiring.scan import SCAN_REPORTERS, SCAN_SOURCES, SERVER_SCAN_SOURCES, scan_sources
from vaultside.wiring.seal import SEAL_KINDS
from vaultside.wiring.sources import SOURCE_KINDS
from vaultside.wiring.storage import STORAGE_KINDS


def test_unknown_kind_is_named_with_the_known_ones() -> None:
    with pytest.raises(InvalidRequestError) as err:
        lookup(STORAGE_KINDS, "etcd", "storage.kind")
    assert err.value.message == ("storage.kind 'etcd' is not available (known: postgres, sqlite)")
    with pytest.raises(InvalidRequestError, match=r"\(known: none\)"):
        lookup({}, "x", "scan kind")


def test_register_refuses_to_shadow_unless_asked() -> None:
    registry = {"a": 1}
    with pytest.raises(InvalidRequestError, match="already registered"):
        register(registry, "a", 2)
    register(registry, "a", 2, replace=True)
    register(registry, "b", 3)
    assert registry == {"a": 2, "b": 3}


def test_every_settings_kind_has_a_factory() -> None:
    # The Literal kinds of settings and the policy models stay valid: each has an entry.
    assert set(STORAGE_KINDS) == set(get_args(StorageSettings.model_fields["kind"].annotation))
    assert set(SEAL_KINDS) == set(get_args(SealSettings.model_fields["kind"].annotation))
    assert set(SOURCE_KINDS) == {"kv", "vault"}
    assert set(TARGET_KINDS) == {"kv", "vault-kv", "postgres", "command", "webhook"}
    assert set(GENERATOR_KINDS) == {"password", "bytes", "token", "keypair"}
    assert set(SCAN_SOURCES) == {"image", "containers", "registry", "archive", "path"}
    # SECURITY: the server scans only through the engine, never its own files.
    assert set(SERVER_SCAN_SOURCES) == {"image", "containers"}
    assert set(SCAN_REPORTERS) == {"table", "json", "sarif"}


def test_every_scan_source_entry_imports_its_factory() -> None:
    # The entries import their module on first use: each must name a real factory. With no
    # targets and no engine a factory answers [] or a named InvalidRequestError.
    for kind in SCAN_SOURCES:
        try:
            assert scan_sources(kind, ScanRequest()) == []
        except InvalidRequestError as exc:
            assert "target" in exc.message or "Docker engine" in exc.message
