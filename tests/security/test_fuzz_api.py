"""Schema-driven fuzzing (schemathesis) of a live server: no 5xx, only documented statuses.

A bounded sample for CI (two passes of about 12 s: the root token, then a token that may only
read ``secrets/app/*``). ``make fuzz`` / ``bench/fuzz_api.py`` runs the long version.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.integration.services.vaultside_server import VaultsideServerFactory

FUZZ = Path(__file__).resolve().parents[2] / "bench" / "fuzz_api.py"
SECONDS_PER_PASS = 12


def test_schemathesis_finds_no_server_error_and_no_undocumented_status(
    vaultside_server: VaultsideServerFactory, tmp_path: Path
) -> None:
    server = vaultside_server()
    env = {**os.environ, "VAULTSIDE_TOKEN": server.root_token}
    argv = [
        sys.executable, str(FUZZ), "--addr", server.addr,
        "--audit-log", str(server.data_dir / "audit.log"),
        "--max-time", str(SECONDS_PER_PASS), "--max-examples", "5",
    ]  # fmt: skip
    proc = subprocess.run(
        argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180, check=False
    )
    lines = proc.stdout.strip().splitlines()
    assert lines, proc.stderr[-2000:]
    summary = json.loads(lines[-1])
    failures = [f for p in summary["passes"] for f in p["failures"]]
    assert not failures, "\n".join(lines[:-1])
    assert summary["audit_5xx"] == 0, summary
    assert summary["generated"] >= 200, summary  # it really ran
    assert proc.returncode == 0, proc.stdout[-2000:]
