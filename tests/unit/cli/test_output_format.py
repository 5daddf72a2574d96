"""The one --format option and renderer (vaultside.cli.render): flags, VAULTSIDE_FORMAT, the
deprecated --json alias, and plain tables (no box drawing) when stdout is not a terminal."""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from vaultside.cli import render
from vaultside.cli.main import cli
from vaultside.cli.render import EXIT_INVALID, output_format, plain_table

BOX = re.compile("[\u2500-\u257f]")
DATA = {"path": "app/db", "versions": [1, 2], "note": "two\nlines"}


@click.command()
@output_format()
def branching(as_json: bool) -> None:
    """A command written the old way: it branches on as_json."""
    if as_json:
        render.print_json(DATA)
    else:
        render.print_mapping(DATA, "secret")


@click.command()
@output_format("table", "json", "sarif", dest="fmt")
def named(fmt: str) -> None:
    """A command that receives the format's name (like scan)."""
    click.echo(f"format={fmt}")


@click.command()
@output_format(dest=None)
def rendered() -> None:
    """A command that leaves the choice to render()."""
    render.render([{"name": "a", "ttl": 1}, {"name": "bb", "ttl": None}], title="tokens")


def _run(cmd: click.Command, *args: str, **env: str) -> Any:
    return CliRunner().invoke(cmd, list(args), env={"VAULTSIDE_FORMAT": "", **env})


@pytest.mark.parametrize(
    ("args", "env", "is_json"),
    [
        ((), {}, False),
        (("--format", "json"), {}, True),
        (("--json",), {}, True),
        (("--json", "--format", "json"), {}, True),
        ((), {"VAULTSIDE_FORMAT": "json"}, True),
        ((), {"VAULTSIDE_FORMAT": " JSON "}, True),
        (("--format", "table"), {"VAULTSIDE_FORMAT": "json"}, False),
        ((), {"VAULTSIDE_FORMAT": "sarif"}, False),  # not offered here: the default
    ],
)
def test_format_choice(args: tuple[str, ...], env: dict[str, str], is_json: bool) -> None:
    result = _run(branching, *args, **env)
    assert result.exit_code == 0, result.output
    if is_json:
        assert json.loads(result.output) == DATA
    else:
        assert result.output.startswith("secret\nKEY ")


def test_unknown_env_format_is_a_usage_error() -> None:
    result = _run(branching, VAULTSIDE_FORMAT="yaml")
    assert result.exit_code == EXIT_INVALID
    assert "VAULTSIDE_FORMAT must be one of table, json, sarif" in result.output


def test_json_alias_contradicting_format_is_a_usage_error() -> None:
    result = _run(branching, "--json", "--format", "table")
    assert result.exit_code == EXIT_INVALID
    assert "--json contradicts --format table" in result.output


def test_json_alias_is_hidden_and_format_documented() -> None:
    result = _run(branching, "--help")
    assert "--format [table|json]" in result.output
    assert "--json" not in result.output


def test_named_formats_and_env() -> None:
    assert _run(named).output == "format=table\n"
    assert _run(named, VAULTSIDE_FORMAT="sarif").output == "format=sarif\n"
    assert _run(named, "--json").output == "format=json\n"


def test_render_follows_the_current_format() -> None:
    out = _run(rendered).output
    assert out == "tokens\nNAME  TTL\na     1\nbb    -\n"
    assert json.loads(_run(rendered, "--format", "json").output)[1] == {"name": "bb", "ttl": None}


def test_plain_table_is_aligned_text_without_box_drawing() -> None:
    out = _run(branching).output
    assert not BOX.search(out)
    lines = out.splitlines()
    assert lines[0] == "secret"
    assert lines[1].split() == ["KEY", "VALUE"]
    # the Value column starts at the same offset on every line; newlines stay escaped
    assert {line.index(line.split()[1]) for line in lines[1:]} == {len("versions") + 2}
    assert "two\\nlines" in out


def test_plain_table_function() -> None:
    assert plain_table(("a", "long header"), [("xx", None), ("y", "z\tq")]) == (
        "A   LONG HEADER\nxx\ny   z\\tq\n"
    )


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_gets_the_rich_table(monkeypatch: pytest.MonkeyPatch) -> None:
    out = _Terminal()
    monkeypatch.setattr(sys, "stdout", out)
    render.print_table(("Key", "Value"), [("a", "b")])
    assert BOX.search(out.getvalue())


def test_real_commands_accept_format(tmp_path: Path) -> None:
    """scan keeps its own --format values and gets VAULTSIDE_FORMAT the same way."""
    (tmp_path / "README").write_text("nothing to see\n")
    runner = CliRunner()
    sarif = runner.invoke(cli, ["scan", "path", str(tmp_path)], env={"VAULTSIDE_FORMAT": "sarif"})
    assert sarif.exit_code == 0, sarif.output
    assert json.loads(sarif.stdout)["version"] == "2.1.0"
    table = runner.invoke(cli, ["scan", "path", str(tmp_path), "--format", "table"])
    assert table.stdout == "no findings\n"
    for command in (["rotation", "show"], ["broker", "metadata"], ["operator", "rotate-key"]):
        result = runner.invoke(cli, [*command, "--help"])
        assert "--format [table|json]" in result.output, command
        # rotation show and broker metadata printed only JSON before: JSON stays their default
        default = "table" if command[0] == "operator" else "json"
        assert f"$VAULTSIDE_FORMAT, else {default})" in " ".join(result.output.split()), command


def test_print_table_in_a_pipe_has_no_box_drawing(capsys: pytest.CaptureFixture[str]) -> None:
    render.print_table(("Version", "State"), [(1, "current"), (2, "deleted")], title="app/db")
    out = capsys.readouterr().out
    assert not BOX.search(out), out
    assert out == "app/db\nVERSION  STATE\n1        current\n2        deleted\n"
