"""The click tree keeps the CLI convention: every option has help, every command an example,
every command that prints data takes ``--format``; docs/cli.md is generated from the tree.

These walk the whole tree, so a command added anywhere fails here until it is documented.
"""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from vaultside.cli import render
from vaultside.cli.main import cli
from vaultside.cli.reference import iter_commands, render_reference, root_context

DOCS = Path(__file__).resolve().parents[3] / "docs" / "cli.md"
_EXAMPLE = re.compile(r"^\s*Examples?:\n(\s+\S.*\n?)+", re.MULTILINE)
_INVOCATION = re.compile(r"(?:^|[\s|(])vaultside((?: [a-z][a-z-]*)+)")


def _tree() -> list[tuple[click.Command, click.Context]]:
    return list(iter_commands(cli, root_context(cli)))


def _leaves() -> list[tuple[click.Command, click.Context]]:
    return [(c, x) for c, x in _tree() if not isinstance(c, click.Group)]


def test_the_tree_is_walked_whole() -> None:
    paths = {ctx.command_path for _, ctx in _tree()}
    assert {"vaultside secret get", "vaultside scan image", "vaultside completion"} <= paths
    assert "vaultside cli-reference" not in paths  # hidden


def test_every_option_has_help() -> None:
    missing = [
        f"{ctx.command_path} {param.opts[0]}"
        for command, ctx in _tree()
        for param in command.get_params(ctx)
        if isinstance(param, click.Option) and not param.hidden and not (param.help or "").strip()
    ]
    assert missing == [], "options without help text: " + ", ".join(missing)


def test_every_command_help_has_an_example() -> None:
    missing = [
        ctx.command_path for command, ctx in _leaves() if not _EXAMPLE.search(command.help or "")
    ]
    assert missing == [], (
        "commands whose help has no 'Example:' block (\\b, 'Example:', '  vaultside ...'): "
        + ", ".join(missing)
    )


def test_examples_name_real_commands() -> None:
    paths = {ctx.command_path for _, ctx in _tree()}
    for command, ctx in _leaves():
        match = _EXAMPLE.search(command.help or "")
        assert match is not None
        for line in match.group(0).splitlines()[1:]:
            called = _INVOCATION.search(line)
            assert called is not None, (ctx.command_path, line)
            words = called.group(1).split()
            assert any(f"vaultside {' '.join(words[:n])}" == ctx.command_path for n in (1, 2, 3)), (
                ctx.command_path,
                line,
            )
            assert f"vaultside {words[0]}" in paths, line


def test_every_command_with_json_output_takes_format() -> None:
    """A command that grew its own --json (not through render.output_format) fails here."""
    wrong = []
    for command, ctx in _leaves():
        names = {opt for p in command.get_params(ctx) for opt in p.opts}
        if "--json" in names or "--format" in names:
            fmt = next((p for p in command.get_params(ctx) if "--format" in p.opts), None)
            json_alias = next((p for p in command.get_params(ctx) if "--json" in p.opts), None)
            ours = fmt is not None and fmt.name == "output_format"
            if not ours or json_alias is None or not json_alias.hidden:
                wrong.append(ctx.command_path)
    assert wrong == [], "use @output_format() from vaultside.cli.render: " + ", ".join(wrong)


def test_every_exit_code_is_described() -> None:
    constants = {v for k, v in vars(render).items() if k.startswith("EXIT_") and k != "EXIT_CODES"}
    assert constants - set(render.EXIT_CODES) == set(), "add each EXIT_* to render.EXIT_CODES"


def test_docs_cli_md_is_generated_from_the_tree() -> None:
    assert DOCS.read_text() == render_reference(cli), (
        "regenerate: vaultside cli-reference > docs/cli.md"
    )


def test_the_hidden_command_prints_the_reference() -> None:
    result = CliRunner().invoke(cli, ["cli-reference"], prog_name="vaultside")
    assert result.exit_code == 0, result.output
    assert result.output == render_reference(cli)


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(shell: str) -> None:
    result = CliRunner().invoke(cli, ["completion", shell], prog_name="vaultside")
    assert result.exit_code == 0, result.output
    assert "_VAULTSIDE_COMPLETE" in result.output
    assert f"{shell}_complete" in result.output


def test_completion_answers_commands_and_options() -> None:
    def complete(words: str, cword: int) -> str:
        env = {"_VAULTSIDE_COMPLETE": "bash_complete", "COMP_WORDS": words}
        env["COMP_CWORD"] = str(cword)
        return CliRunner().invoke(cli, [], env=env, prog_name="vaultside").output

    assert "plain,secret" in complete("vaultside sec", 1).splitlines()
    assert "plain,--format" in complete("vaultside secret get --fo", 3).splitlines()
    assert {"plain,table", "plain,json", "plain,sarif"} <= set(
        complete("vaultside scan path --format ", 4).splitlines()
    )


def test_completion_rejects_other_shells() -> None:
    result = CliRunner().invoke(cli, ["completion", "powershell"], prog_name="vaultside")
    assert result.exit_code == render.EXIT_INVALID
