"""Two OS processes on one SQLite file (``server.workers = 2``): no lost or torn writes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from vaultside.storage.sqlite import SqliteStorage

WORKER = r"""
import asyncio, sys
from pathlib import Path
from vaultside.errors import ConflictError
from vaultside.storage.sqlite import SqliteStorage

async def increment(s):
    while True:
        rec = await s.get("counter")
        try:
            await s.put("counter", b"%d" % (int(rec.value) + 1), expect_revision=rec.revision)
            return
        except ConflictError:
            await asyncio.sleep(0)

async def main(path, name):
    s = SqliteStorage(Path(path))
    await s.open()
    await asyncio.gather(
        *(s.put(f"{name}/{i:03d}", b"x") for i in range(300)),
        *(increment(s) for _ in range(100)),
    )
    await s.close()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def test_two_processes_share_the_file(tmp_path: Path) -> None:
    db = tmp_path / "vs.db"
    s = SqliteStorage(db)
    await s.open()
    await s.put("counter", b"0")
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(db), name], stderr=subprocess.PIPE)
        for name in ("a", "b")
    ]
    for p in procs:
        _, err = await asyncio.to_thread(p.communicate, timeout=60)
        assert p.returncode == 0, err.decode()
    try:
        rec = await s.get("counter")
        assert rec is not None and rec.value == b"200"
        assert len(await s.list("a/")) == 300
        assert len(await s.list("b/")) == 300
    finally:
        await s.close()
