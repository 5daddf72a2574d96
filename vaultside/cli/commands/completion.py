"""``vaultside completion``: the shell completion script (click's), for bash, zsh or fish."""

from __future__ import annotations

import click

COMPLETE_VAR = "_VAULTSIDE_COMPLETE"  # what the script sets when it asks for completions


@click.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def cli(shell: str) -> None:
    """Print the completion script for SHELL (commands, options, choices, paths).

    \b
    Example:
      vaultside completion bash > /etc/bash_completion.d/vaultside
      eval "$(vaultside completion zsh)"
      vaultside completion fish > ~/.config/fish/completions/vaultside.fish
    """
    from click.shell_completion import get_completion_class

    completion = get_completion_class(shell)
    if completion is None:  # unreachable: the choice holds only shells click supports
        raise click.UsageError(f"no completion for {shell}")
    root = click.get_current_context().find_root().command
    click.echo(completion(root, {}, "vaultside", COMPLETE_VAR).source())
