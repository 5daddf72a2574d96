"""``vaultside scan`` starts without the server, client and terminal stacks.

Start-up is most of a small scan's time (about 0.1 s of 0.3 s on 12k small files): importing
the server's composition root (aiohttp, pydantic, every service) cost 0.3 s more.
"""

from __future__ import annotations

import json
import random
import string
import subprocess
import sys
import tarfile
from pathlib import Path

HEAVY = ("aiohttp", "asyncio", "pydantic", "rich", "multiprocessing", "vaultside.api",
         "vaultside.wiring.server", "vaultside.client", "docker", "requests")  # fmt: skip

PROBE = """
import atexit, json, sys
atexit.register(lambda: print(json.dumps(sorted(sys.modules))))
from vaultside.cli.main import main
sys.argv = ["vaultside", "scan", "archive", sys.argv[1], "--format", "json",
            "--fail-on", "none", "--no-progress", "--jobs", "1", "-o", sys.argv[2]]
main()
"""


def test_a_scan_imports_no_server_client_or_terminal_stack(tmp_path: Path) -> None:
    archive = tmp_path / "one.tar"
    with tarfile.open(archive, "w") as tf:
        tf.add(__file__, arcname="a.py")
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(archive), str(tmp_path / "report.json")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    loaded = json.loads(out.stdout.splitlines()[-1])
    heavy = sorted({m for m in loaded for h in HEAVY if m == h or m.startswith(h + ".")})
    assert heavy == [], heavy
    assert json.loads((tmp_path / "report.json").read_text())["findings"] == []


EXIT_PROBE = """
import atexit, sys
atexit.register(lambda: sys.stderr.write("ATEXIT-RAN\\n"))
from vaultside.cli.main import main
sys.argv = ["vaultside", "scan", "archive", sys.argv[1], "--format", "json", "--no-progress"]
main()
"""


def test_a_scan_ends_fast_with_its_exit_code_its_whole_report_and_atexit(tmp_path: Path) -> None:
    """The scan skips the interpreter's teardown, but not its output, exit code or atexit."""
    token = "ghp_" + "".join(random.choice(string.ascii_letters) for _ in range(36))
    src = tmp_path / "leak.env"
    src.write_text("".join(f"NOTE_{i}=plain text line {i}\n" for i in range(3000)))
    src.write_text(src.read_text() + f"GITHUB_TOKEN={token}\n")
    archive = tmp_path / "leak.tar"
    with tarfile.open(archive, "w") as tf:
        tf.add(src, arcname="app/leak.env")
    res = subprocess.run(
        [sys.executable, "-c", EXIT_PROBE, str(archive)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 1, res.stderr  # findings at or above --fail-on low
    assert json.loads(res.stdout)["findings"], res.stdout[-500:]
    assert "ATEXIT-RAN" in res.stderr
