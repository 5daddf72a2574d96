"""The operator's target catalog: declarations, SHA-256 pins, env allow-list, webhook URLs."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from vaultside.errors import InvalidRequestError
from vaultside.rotation.catalog import CommandEntry, TargetCatalog, WebhookEntry, open_pinned
from vaultside.rotation.targets.command import command_env


def _script(tmp_path: Path, body: str = "#!/bin/sh\nexit 0\n") -> tuple[Path, str]:
    path = tmp_path / "hook.sh"
    path.write_text(body)
    path.chmod(0o700)
    return path, hashlib.sha256(body.encode()).hexdigest()


def test_pin_is_checked_at_start_and_on_open(tmp_path: Path) -> None:
    path, digest = _script(tmp_path)
    catalog = TargetCatalog({"hook": CommandEntry("hook", (str(path),), digest)})
    catalog.verify()
    path.write_text("#!/bin/sh\nexit 1\n")
    with pytest.raises(InvalidRequestError, match="does not match its pinned sha256"):
        catalog.verify()
    with pytest.raises(InvalidRequestError, match="does not match its pinned sha256"):
        open_pinned(CommandEntry("hook", (str(path),), digest))


def test_open_pinned_refuses_missing_and_non_regular_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match="cannot open argv"):
        open_pinned(CommandEntry("x", (str(tmp_path / "nope"),), "0" * 64))
    with pytest.raises(InvalidRequestError, match="not a regular file"):
        open_pinned(CommandEntry("x", (str(tmp_path),), "0" * 64))


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        (CommandEntry("x", ("relative",), "0" * 64), "argv"),
        (CommandEntry("x", ("/bin/true",), "ABC"), "sha256"),
        (CommandEntry("x", ("/bin/true",), "0" * 64, env=("A=B",)), "env"),
        (CommandEntry("Bad Name", ("/bin/true",), "0" * 64), "target names"),
        (WebhookEntry("h", "ftp://example.org/x"), "url"),
        (WebhookEntry("h", "http://127.0.0.1:9/x"), "allow_http"),
        (WebhookEntry("h", "http://192.0.2.10/x", allow_http=True), "only to loopback"),
        (WebhookEntry("h", "https://user:pw@example.org/x"), "credentials"),
        (WebhookEntry("h", "https://example.org/x", ca_file=Path("/nonexistent")), "ca_file"),
    ],
)
def test_bad_declarations_name_the_field(entry: CommandEntry | WebhookEntry, field: str) -> None:
    with pytest.raises(InvalidRequestError, match=field):
        TargetCatalog({entry.name: entry})


def test_loopback_http_is_allowed_when_asked() -> None:
    for url in ("http://127.0.0.1:9/x", "http://[::1]:9/x", "http://localhost:9/x"):
        TargetCatalog({"h": WebhookEntry("h", url, allow_http=True)})


def test_lookup_is_by_kind_and_name() -> None:
    catalog = TargetCatalog({"h": WebhookEntry("h", "https://example.org/x")})
    assert catalog.get("webhook", "h").name == "h"
    with pytest.raises(InvalidRequestError, match=r"target\.name: no command target named 'h'"):
        catalog.get("command", "h")


def test_command_env_holds_only_listed_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVER_SECRET_THING", "x")
    monkeypatch.setenv("PGSERVICE", "db")
    entry = CommandEntry("c", ("/bin/true",), "0" * 64, env=("PGSERVICE", "UNSET_NAME"))
    env = command_env(entry, "set", "app/db")
    assert env == {
        "PGSERVICE": "db",
        "VAULTSIDE_ROTATION_STEP": "set",
        "VAULTSIDE_ROTATION_PATH": "app/db",
    }
    assert "PATH" in os.environ and "PATH" not in env


def test_what_runs_is_exactly_what_was_hashed(tmp_path: Path) -> None:
    """The program runs from a sealed copy: rewriting the file in place changes nothing."""
    body = "#!/bin/sh\nexit 0\n"
    path, digest = _script(tmp_path, body)
    fd = open_pinned(CommandEntry("hook", (str(path),), digest))
    try:
        with path.open("r+") as f:  # same inode, new content
            f.write("#!/bin/sh\nexit 7\n")
        assert Path(f"/proc/self/fd/{fd}").read_text() == body
        with pytest.raises(PermissionError):
            os.write(fd, b"x")
    finally:
        os.close(fd)
