"""Broker registry and per-source cache TTLs (no network: nothing here calls upstream)."""

from __future__ import annotations

import pytest

from vaultside.broker.source import Broker, BrokerRegistry
from vaultside.clock import FakeClock
from vaultside.config.settings import BrokerSettings
from vaultside.errors import InvalidRequestError
from vaultside.refs import parse_ref
from vaultside.storage.memory import MemoryStorage
from vaultside.wiring.brokers import build_brokers


def registry(clock: FakeClock) -> BrokerRegistry:
    settings = {
        "corp": BrokerSettings(
            address="http://127.0.0.1:1", cache_ttl=30,
            cache_ttls={"secret": 60, "secret/hot": 5, "secret/hot/x": 1},
        ),
        "edge": BrokerSettings(address="http://127.0.0.1:1"),
    }  # fmt: skip
    return build_brokers(settings, MemoryStorage(clock=clock, interleave=False), clock)


def test_cache_ttl_longest_prefix_wins(clock: FakeClock) -> None:
    corp: Broker = registry(clock).get("corp")
    assert corp.ttl_for("secret", "hot/x") == 1
    assert corp.ttl_for("secret", "hot/y") == 5
    assert corp.ttl_for("secret", "hotter") == 60  # prefixes match whole segments
    assert corp.ttl_for("kv", "a") == 30


async def test_unknown_broker_is_400_naming_configured_ones(clock: FakeClock) -> None:
    reg = registry(clock)
    with pytest.raises(
        InvalidRequestError, match=r"unknown broker 'nope' \(configured: corp, edge\)"
    ) as e:
        await reg.resolve(parse_ref("vault:nope/secret/app#pw"))
    assert e.value.status == 400
    with pytest.raises(InvalidRequestError, match="not a vault reference"):
        await reg.resolve(parse_ref("kv:app#pw"))


@pytest.mark.parametrize(
    "bad",
    ["vault:corp/secret#pw", "vault:corp/secret/../x#pw", "vault:corp/secret/app",
     "vault:corp/secret/app#pw@0", "vault:corp//app#pw", "vault:c orp/secret/app#pw"],
)  # fmt: skip
def test_malformed_vault_refs_show_the_expected_form(bad: str) -> None:
    with pytest.raises(InvalidRequestError, match="expected kv:<path>#<field>"):
        parse_ref(bad)


def test_vault_ref_round_trip_and_policy_path() -> None:
    ref = parse_ref("vault:corp/secret/app/db#password@3")
    assert (ref.broker, ref.mount, ref.path, ref.field, ref.version) == (
        "corp", "secret", "app/db", "password", 3,
    )  # fmt: skip
    assert str(ref) == "vault:corp/secret/app/db#password@3"
    assert ref.policy_path == "broker/corp/secret/app/db"
