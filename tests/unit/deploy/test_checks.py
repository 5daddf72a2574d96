"""The deploy checks themselves catch what they are meant to catch."""

from __future__ import annotations

import click
import pytest

from .checks import is_setting, parse_cli


def test_parse_cli_accepts_real_commands() -> None:
    assert parse_cli(["serve"]) == ["serve"]
    assert parse_cli(["operator", "init"]) == ["operator", "init"]
    assert parse_cli(["sidecar", "--dir=/x", "--once", "--secret=a=kv:app/db#p"]) == ["sidecar"]


@pytest.mark.parametrize(
    "args",
    [
        ["serve", "--no-such-flag"],
        ["no-such-command"],
        ["operator", "nope"],
        ["serve", "--workers=0"],
    ],
)
def test_parse_cli_rejects_near_misses(args: list[str]) -> None:
    with pytest.raises(click.UsageError):
        parse_cli(args)


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("VAULTSIDE_DATA_DIR", True),
        ("VAULTSIDE_SERVER__LISTEN", True),
        ("VAULTSIDE_AUDIT__STDOUT", True),
        ("VAULTSIDE_INJECT__ADMISSION__PRIVILEGED", True),
        ("VAULTSIDE_ADDR", True),
        ("VAULTSIDE_BROKERS__CORP__ADDRESS", True),
        ("VAULTSIDE_BROKERS__CORP__ADDRES", False),
        ("VAULTSIDE_BROKERS__ADDRESS", False),
        ("VAULTSIDE_SERVER__LISTENER", False),
        ("VAULTSIDE_DATA_DIR__X", False),
        ("VAULTSIDE_SERVR__LISTEN", False),
        ("DATA_DIR", False),
    ],
)
def test_is_setting(name: str, ok: bool) -> None:
    assert is_setting(name) is ok
