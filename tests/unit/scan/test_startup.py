"""``vaultside scan`` starts without the server, client and terminal stacks.

Start-up is most of a small scan's time (about 0.1 s of 0.3 s on 12k small files): importing
the server's composition root (aiohttp, pydantic, every service) cost 0.3 s more.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

HEAVY = ("aiohttp", "asyncio", "pydantic", "rich", "multiprocessing", "vaultside.api",
         "vaultside.wiring.server", "vaultside.client", "docker", "requests")  # fmt: skip

PROBE = """
import json, sys
from vaultside.cli.main import main
sys.argv = ["vaultside", "scan", "archive", sys.argv[1], "--format", "json",
            "--fail-on", "none", "--no-progress", "--jobs", "1", "-o", sys.argv[2]]
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)))
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
