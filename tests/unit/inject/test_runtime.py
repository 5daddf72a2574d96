"""Wiring: role clients follow their token files."""

from __future__ import annotations

import os
from pathlib import Path

from vaultside.inject.roles import make_role
from vaultside.inject.runtime import RoleClients


async def test_token_file_is_reread_after_rotation(tmp_path: Path) -> None:
    token_file = tmp_path / "web.token"
    token_file.write_text("vs.first")
    role = make_role("web", token_file=token_file)
    clients = RoleClients({"VAULTSIDE_ADDR": "http://127.0.0.1:9"})
    first = clients(role).client  # type: ignore[attr-defined]
    assert clients(role).client is first  # type: ignore[attr-defined]
    token_file.write_text("vs.second")
    os.utime(token_file, ns=(1, 1))  # a different mtime, whatever the clock resolution
    second = clients(role).client  # type: ignore[attr-defined]
    assert second is not first
    assert second._token == "vs.second" and first._token == "vs.first"
    await clients.close()
