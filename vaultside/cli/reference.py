"""``docs/cli.md``: the CLI reference, generated from the click command tree.

``vaultside cli-reference > docs/cli.md`` writes it (a hidden command); a unit test checks the
file matches, so a command or option added anywhere shows up in the docs or fails the build.
The conventions part is generated too: exit codes from ``render.EXIT_CODES``, the client's
environment from ``client.CLIENT_ENV``.
"""

from __future__ import annotations

from collections.abc import Iterator

import click

WIDTH = 100  # help is rendered at a fixed width so the file does not depend on the terminal


def iter_commands(
    command: click.Command, ctx: click.Context
) -> Iterator[tuple[click.Command, click.Context]]:
    """``command`` and every visible sub-command below it, depth first, in listed order."""
    yield command, ctx
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            yield from iter_commands(sub, click.Context(sub, info_name=name, parent=ctx))


def root_context(root: click.Command) -> click.Context:
    """A context for walking ``root`` (named ``vaultside``) at the reference's width."""
    settings = {**root.context_settings, "terminal_width": WIDTH, "max_content_width": WIDTH}
    return click.Context(root, info_name="vaultside", **settings)


def _table(header: tuple[str, str], rows: list[tuple[str, str]]) -> list[str]:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    lines += [f"| {a} | {b.replace('|', '/')} |" for a, b in rows]
    return lines


def render_reference(root: click.Command) -> str:
    """The Markdown of ``docs/cli.md`` for the command tree under ``root``."""
    from vaultside.cli.render import EXIT_CODES, FORMAT_ENV
    from vaultside.client_env import CLIENT_ENV

    env_rows = [(f"`{k}`", v) for k, v in CLIENT_ENV.items()]
    env_rows += [
        (f"`{FORMAT_ENV}`", "default of `--format`: `table` or `json` (`sarif` applies to scans)"),
        ("`VAULTSIDE_CONFIG`", "TOML settings file of `serve`, `plugin`, `operator`"),
    ]
    lines = [
        "# vaultside CLI reference",
        "",
        "Generated from the click command tree by `vaultside cli-reference > docs/cli.md`; do",
        "not edit by hand (`tests/unit/cli/test_cli_reference.py` checks that it matches).",
        "",
        "## Conventions",
        "",
        "**Output.** Every command that prints data takes `--format`: `table` or `json`,",
        "and `sarif` for `scan`. Without `--format`, `VAULTSIDE_FORMAT` decides (a format the",
        "command does not offer, e.g. `sarif` for `secret get`, falls back to the command's",
        "default; an unknown one is a usage error). `rotation show` and `broker metadata`, which",
        "printed only JSON before, default to `json`, the others to `table`. Tables are drawn",
        "on a terminal; in a pipe or file they are plain columns separated by two spaces, with an",
        "upper-case header line and newlines in values written as `\\n`. JSON is indented with",
        "sorted keys. `--json` still works as a hidden, deprecated alias of `--format json`.",
        "`--field NAME` prints one raw value.",
        "",
        "**Errors.** A failure prints one line, `Error: <message>`, on stderr and exits with:",
        "",
        *_table(("exit code", "meaning"), [(str(k), v) for k, v in EXIT_CODES.items()]),
        "",
        "**Client environment** (same names as Vault's CLI, `VAULT_` → `VAULTSIDE_`):",
        "",
        *_table(("variable", "meaning"), env_rows),
        "",
        "**Shell completion.** `vaultside completion bash|zsh|fish` prints the script, e.g.",
        "`vaultside completion bash > /etc/bash_completion.d/vaultside` or",
        '`eval "$(vaultside completion zsh)"` in `~/.zshrc`.',
        "",
        "## Commands",
    ]
    for command, ctx in iter_commands(root, root_context(root)):
        lines += ["", f"### `{ctx.command_path}`", "", "```text"]
        lines += [line.rstrip() for line in command.get_help(ctx).splitlines()]
        lines.append("```")
    return "\n".join(lines) + "\n"


@click.command("cli-reference", hidden=True)
def reference_command() -> None:
    """Print docs/cli.md (the CLI reference) generated from this command tree.

    \b
    Example:
      vaultside cli-reference > docs/cli.md
    """
    root = click.get_current_context().find_root().command
    click.echo(render_reference(root), nl=False)
