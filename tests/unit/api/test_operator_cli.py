"""``vaultside operator init`` and ``root-token`` on a local data dir (no server)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from vaultside.cli.main import cli
from vaultside.config.settings import Settings
from vaultside.wiring.server import build_services


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("VAULTSIDE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VAULTSIDE_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def test_init_creates_the_key_once(data_dir: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["operator", "init"])
    assert result.exit_code == 0, result.output
    key = data_dir / "vaultside.key"
    assert key.stat().st_mode & 0o777 == 0o600 and len(key.read_bytes()) == 32
    before = key.read_bytes()
    again = runner.invoke(cli, ["operator", "init"])
    assert again.exit_code == 2
    assert "Error:" in again.output
    assert key.read_bytes() == before


def test_init_passphrase_creates_the_salt(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULTSIDE_SEAL__KIND", "passphrase")
    monkeypatch.setenv("VAULTSIDE_SEAL__PASSPHRASE_FILE", str(data_dir.parent / "pass"))
    result = CliRunner().invoke(cli, ["operator", "init"])
    assert result.exit_code == 0, result.output
    assert (data_dir / "vaultside.salt").exists()


def test_root_token_needs_the_key_and_then_works(data_dir: Path) -> None:
    runner = CliRunner()
    sealed = runner.invoke(cli, ["operator", "root-token"])
    assert sealed.exit_code == 2 and "Error:" in sealed.output
    assert runner.invoke(cli, ["operator", "init"]).exit_code == 0
    minted = runner.invoke(cli, ["operator", "root-token"])
    assert minted.exit_code == 0, minted.output
    token = minted.output.split("Root token: ", 1)[1].strip()

    async def check() -> tuple[str, ...]:
        services = build_services(Settings())
        await services.open()
        try:
            await services.barrier.unseal()
            return (await services.tokens.lookup(token)).policies
        finally:
            await services.close()

    assert asyncio.run(check()) == ("root",)
