"""``vaultside audit verify`` and ``vaultside audit hash``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.stores import keyed_settings
from vaultside.audit.hmac import AuditHasher, load_or_create_key
from vaultside.audit.sinks import AuditBroker, FileSink
from vaultside.cli.main import cli
from vaultside.config.settings import Settings
from vaultside.wiring.audit import audit_key_file
from vaultside.wiring.keyspace import view

from .conftest import make_event


async def _write_log(path: Path, key_file: Path, planted: str, n: int = 4) -> None:
    broker = AuditBroker([FileSink(path)], AuditHasher(load_or_create_key(key_file)))
    for i in range(n):
        await broker.log(make_event(i, token=planted))
    await broker.close()


async def test_hash_matches_log_via_stdin_and_arg(tmp_path: Path, planted: str) -> None:
    log, key = tmp_path / "audit.log", tmp_path / "audit.key"
    await _write_log(log, key, planted)
    runner = CliRunner()
    out = runner.invoke(cli, ["audit", "hash", "--key-file", str(key)], input=planted + "\n")
    assert out.exit_code == 0, out.output
    digest = out.output.strip()
    assert digest.startswith("hmac-sha256:")
    assert json.loads(log.read_text().splitlines()[0])["extra"]["token"] == digest
    out2 = runner.invoke(cli, ["audit", "hash", "--key-file", str(key), planted])
    assert out2.output.strip() == digest
    out3 = runner.invoke(cli, ["audit", "hash", "--key-file", str(key), "-"], input=planted)
    assert out3.output.strip() == digest


def test_hash_default_key_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mp = monkeypatch
    mp.chdir(tmp_path)
    mp.setenv("VAULTSIDE_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    missing = runner.invoke(cli, ["audit", "hash", "x"])
    assert missing.exit_code != 0 and "no audit key file" in missing.output
    (tmp_path / "data").mkdir()

    key = load_or_create_key(audit_key_file(Settings()))
    ok = runner.invoke(cli, ["audit", "hash", "x"])
    assert ok.exit_code == 0, ok.output
    assert ok.output.strip() == AuditHasher(key).hash("x")


async def test_verify_ok_and_broken(tmp_path: Path, planted: str) -> None:
    log, key = tmp_path / "audit.log", tmp_path / "audit.key"
    await _write_log(log, key, planted, n=5)
    runner = CliRunner()
    ok = runner.invoke(cli, ["audit", "verify", str(log)])
    assert ok.exit_code == 0 and "OK: 5 records" in ok.output
    okj = runner.invoke(cli, ["audit", "verify", "--json", str(log)])
    assert json.loads(okj.output)["ok"] is True

    lines = log.read_text().splitlines()
    del lines[1]
    lines[2] = lines[2].replace('"status":200', '"status":404')
    log.write_text("\n".join(lines) + "\n")
    bad = runner.invoke(cli, ["audit", "verify", str(log)])
    assert bad.exit_code == 1
    assert "audit chain broken: 2 problem(s) in 4 records (lines 2, 3)" in bad.output
    badj = runner.invoke(cli, ["audit", "verify", "--json", str(log)])
    assert badj.exit_code == 1
    doc = json.loads(badj.output[: badj.output.rindex("}") + 1])
    assert doc["ok"] is False and len(doc["problems"]) == 2

    missing = runner.invoke(cli, ["audit", "verify", str(tmp_path / "nope")])
    assert missing.exit_code == 2


async def test_verify_with_data_dir_checks_macs_and_anchor(tmp_path: Path) -> None:
    from vaultside.audit.anchor import ChainAnchor
    from vaultside.crypto.barrier import Barrier
    from vaultside.wiring.audit import audit_chain_id
    from vaultside.wiring.seal import build_seal
    from vaultside.wiring.storage import build_storage

    data = tmp_path / "data"
    data.mkdir()
    settings = keyed_settings(data)
    log = data / "audit.log"
    barrier = Barrier(build_storage(settings), build_seal(settings))
    await barrier.open()
    await barrier.unseal()
    sink = FileSink(log)
    await sink.write({"n": 0})
    await barrier.close()
    runner = CliRunner()
    args = ["audit", "verify", "--data-dir", str(data), str(log)]
    nokey = await asyncio.to_thread(runner.invoke, cli, args)
    assert nokey.exit_code == 1 and "no audit chain key" in nokey.output, nokey.output

    barrier = Barrier(build_storage(settings), build_seal(settings))
    await barrier.open()
    await barrier.unseal()
    anchor = ChainAnchor(view(barrier, "audit"), [sink], audit_chain_id(settings))
    await anchor.start()
    for i in range(1, 5):
        await sink.write({"n": i})
    await anchor.close()
    await sink.close()
    await barrier.close()
    ok = await asyncio.to_thread(runner.invoke, cli, args)
    assert (
        ok.exit_code == 0
        and "OK: 5 records in 1 file(s), chain intact (keyed and anchored)" in (ok.output)
    ), ok.output

    lines = log.read_bytes().splitlines()
    log.write_bytes(b"\n".join(lines[:-1]) + b"\n")
    plain = await asyncio.to_thread(runner.invoke, cli, ["audit", "verify", str(log)])
    assert plain.exit_code == 0  # structure alone cannot see the shorter tail
    cut = await asyncio.to_thread(runner.invoke, cli, args)
    assert cut.exit_code == 1 and "tail truncated" in cut.output, cut.output
