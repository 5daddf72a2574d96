"""The volume plugin's rough edges, against a REAL dockerd (the plugin test's stack):
group-readable volumes, read-only mounts' flags, and two plugins asking for one socket."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .services.process import spawn, terminate, wait_until
from .test_inject_plugin import SAFE, Stack, stack  # noqa: F401

pytestmark = [pytest.mark.docker, pytest.mark.timeout(240)]
LIMITS = SAFE[2:]  # --read-only, memory and pids limits, without --user


def test_group_member_reads_a_0440_volume(stack: Stack) -> None:  # noqa: F811
    """``mode=0440`` + ``gid=``: a container user of that group (not the owner) reads the file,
    because the tmpfs root follows the file mode (0550), as in docs/injection.md's example."""
    opts = {"secret.db_password": "kv:app/db#password", "uid": "1000", "gid": "3000",
            "mode": "0440"}  # fmt: skip
    cmd = "stat -c '%a %u:%g' /run/secrets /run/secrets/db_password; cat /run/secrets/db_password"
    flags = [*LIMITS, "--user", "2001:3000", "--label", "vaultside.role=web"]
    res = stack.run(stack.volume(), opts, flags, cmd)
    assert res.returncode == 0, res.stderr
    assert res.stdout == f"550 1000:3000\n440 1000:3000\n{stack.values['password']}"
    # Others still get nothing: a user outside the group cannot even list the directory.
    res = stack.run(
        stack.volume(), opts, [*LIMITS, "--user", "2002:2002", "--label", "vaultside.role=web"],
        "cat /run/secrets/db_password",
    )  # fmt: skip
    assert res.returncode != 0 and "Permission denied" in res.stderr, res.stderr
    # The default 0400 keeps the root 0500: the group gets nothing.
    res = stack.run(
        stack.volume(), {"secret.pw": "kv:app/db#password", "uid": "1000", "gid": "3000"},
        flags, "stat -c '%a' /run/secrets; cat /run/secrets/pw",
    )  # fmt: skip
    assert res.returncode != 0 and res.stdout == "500\n", (res.stdout, res.stderr)
    assert stack.our_mounts() == []


def _flags_of(mountinfo: str, point: str) -> tuple[set[str], set[str]]:
    """(per-mount options, superblock options) of ``point`` in a mountinfo text."""
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        if fields[4] == point:
            sep = fields.index("-")
            return set(fields[5].split(",")), set(fields[sep + 3].split(","))
    raise AssertionError(f"{point} not in mountinfo:\n{mountinfo}")
