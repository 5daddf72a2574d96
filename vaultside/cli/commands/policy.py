"""``vaultside policy``: write, read, list, delete.

A policy file is JSON (``{"rules": [{"path": ..., "capabilities": [...]}]}``) or TOML with
``[[rules]]`` tables; ``-`` reads it from stdin.
"""

from __future__ import annotations

from typing import Any

import click

from vaultside.cli.commands.secret import read_source
from vaultside.cli.params import parse_document
from vaultside.cli.render import (
    EXIT_INVALID,
    fail,
    output_format,
    print_json,
    print_table,
    render,
    run_client,
)


def parse_policy_text(text: str, source: str) -> list[dict[str, Any]]:
    """The ``rules`` of a JSON or TOML policy document (a bare JSON list is accepted too)."""
    doc = parse_document(text, source)
    rules = doc if isinstance(doc, list) else doc.get("rules") if isinstance(doc, dict) else None
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        fail(f"{source}: expected a 'rules' list of {{path, capabilities}} objects", EXIT_INVALID)
    return rules


@click.group("policy")
def cli() -> None:
    """Manage access policies (path globs → capabilities)."""


@cli.command("write")
@click.argument("name")
@click.argument("source")
def write(name: str, source: str) -> None:
    """Create or replace policy NAME from a JSON/TOML FILE, or '-' for stdin.

    \b
    Example:
      vaultside policy write app-read app-read.toml
    """
    rules = parse_policy_text(*read_source(source, "policy"))
    run_client(lambda c: c.write_policy(name, rules))
    click.echo(f"wrote policy {name}")


@cli.command("read")
@click.argument("name")
@output_format()
def read(name: str, as_json: bool) -> None:
    """Show a policy's rules.

    \b
    Example:
      vaultside policy read app-read --format json
    """

    doc = run_client(lambda c: c.read_policy(name))
    if as_json:
        print_json(doc)
        return
    rows = [(r.get("path", ""), ", ".join(r.get("capabilities", []))) for r in doc.get("rules", [])]
    print_table(("Path", "Capabilities"), rows, title=f"policy {name}")


@cli.command("list")
@output_format()
def list_(as_json: bool) -> None:
    """List policy names.

    \b
    Example:
      vaultside policy list
    """

    render(run_client(lambda c: c.list_policies()))  # JSON, or one name per line


@cli.command("delete")
@click.argument("name")
def delete(name: str) -> None:
    """Delete a policy.

    \b
    Example:
      vaultside policy delete app-read
    """

    run_client(lambda c: c.delete_policy(name))
    click.echo(f"deleted policy {name}")
