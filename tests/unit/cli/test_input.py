"""Parsing of CLI inputs: FIELD=VALUE/@file/- assignments, versions, policy documents."""

from __future__ import annotations

import io
import secrets
from pathlib import Path

import pytest

from vaultside.cli.commands.policy import parse_policy_text
from vaultside.cli.commands.secret import parse_assignments, parse_stdin_object, parse_versions
from vaultside.cli.render import EXIT_INVALID


def test_assignments_literal_file_and_stdin(tmp_path: Path) -> None:
    pw = secrets.token_urlsafe(24) + "\n"
    f = tmp_path / "pw.txt"
    f.write_text(pw)
    stdin_value = secrets.token_hex(12)
    data = parse_assignments(
        ("user=app", f"password=@{f}", "api=-", "empty="), io.StringIO(stdin_value)
    )
    assert data == {"user": "app", "password": pw, "api": stdin_value, "empty": ""}


@pytest.mark.parametrize(
    "pairs",
    [("novalue",), ("=x",), ("a=1", "a=2"), ("a=-", "b=-"), ("a=@/nonexistent/file",)],
)
def test_bad_assignments_exit_2(pairs: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ei:
        parse_assignments(pairs, io.StringIO("x"))
    assert ei.value.code == EXIT_INVALID
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and err.count("\n") == 1


def test_stdin_json_object() -> None:
    assert parse_stdin_object(io.StringIO('{"a": "1"}')) == {"a": "1"}
    for bad in ("[1]", '{"a": 1}', "nope"):
        with pytest.raises(SystemExit):
            parse_stdin_object(io.StringIO(bad))


def test_versions() -> None:
    assert parse_versions("1,3, 4") == [1, 3, 4]
    assert parse_versions(None) is None
    for bad in ("x", "0", ",", "-1"):
        with pytest.raises(SystemExit):
            parse_versions(bad)


def test_policy_json_toml_and_list() -> None:
    rules = [{"path": "secrets/app/*", "capabilities": ["read", "list"]}]
    assert (
        parse_policy_text(
            '{"rules": [{"path": "secrets/app/*", "capabilities": ["read", "list"]}]}', "f"
        )
        == rules
    )
    toml = '[[rules]]\npath = "secrets/app/*"\ncapabilities = ["read", "list"]\n'
    assert parse_policy_text(toml, "f") == rules
    assert (
        parse_policy_text('[{"path": "secrets/app/*", "capabilities": ["read", "list"]}]', "f")
        == rules
    )
    for bad in ("rules = 3", "{{", '{"rules": ["x"]}'):
        with pytest.raises(SystemExit):
            parse_policy_text(bad, "f")


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_stdin_field_on_a_terminal_prompts_without_echo() -> None:
    from click.testing import CliRunner

    value = secrets.token_urlsafe(12)
    runner = CliRunner()
    with runner.isolation(input=value + "\n") as (out, err, *_):
        data = parse_assignments(("password=-",), _Tty())
        shown = out.getvalue() + (err.getvalue() if err is not None else b"")
    assert data == {"password": value}
    assert value.encode() not in shown and b"password: " in shown
