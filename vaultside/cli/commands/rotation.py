"""``vaultside rotation``: set/show/list/delete policies, rotate now, status, history.

A policy file is JSON or TOML (see ``docs/rotation.md``); ``-`` reads it from stdin.
"""

from __future__ import annotations

from typing import Any

import click

from vaultside.cli.commands.secret import read_source
from vaultside.cli.params import parse_document
from vaultside.cli.render import (
    EXIT_ERROR,
    EXIT_INVALID,
    fail,
    output_format,
    print_json,
    print_mapping,
    print_table,
    render,
    run_client,
)

_JSON = output_format()


def parse_policy_document(text: str, source: str) -> dict[str, Any]:
    """A policy object from JSON or TOML text."""
    doc = parse_document(text, source)
    if not isinstance(doc, dict):
        fail(f"{source}: a rotation policy must be an object", EXIT_INVALID)
    return doc


@click.group("rotation")
def cli() -> None:
    """Rotate secrets on a schedule (policies, rotate now, status, history)."""


@cli.command("set")
@click.argument("path")
@click.argument("source")
@_JSON
def set_(path: str, source: str, as_json: bool) -> None:
    """Set the rotation policy of secret PATH from a JSON/TOML FILE, or '-' for stdin.

    \b
    Example:
      vaultside rotation set app/db policy.toml
    """
    doc = parse_policy_document(*read_source(source, "policy"))
    out = run_client(lambda c: c.write_rotation_policy(path, doc))
    if as_json:
        print_json(out)
    else:
        click.echo(f"set rotation policy of {path}")


@cli.command("show")
@click.argument("path")
@output_format(dest=None, default="json")  # printed JSON only before: scripts keep it
def show(path: str) -> None:
    """Show the rotation policy of PATH.

    \b
    Example:
      vaultside rotation show app/db --format json
    """
    policy = run_client(lambda c: c.read_rotation_policy(path))
    render(policy, title=f"rotation policy of {path}")


@cli.command("list")
@_JSON
def list_(as_json: bool) -> None:
    """List the paths that have a rotation policy.

    \b
    Example:
      vaultside rotation list
    """
    keys = run_client(lambda c: c.list_rotation_policies())
    if as_json:
        print_json(keys)
    else:
        for k in keys:
            click.echo(k)


@cli.command("delete")
@click.argument("path")
def delete(path: str) -> None:
    """Stop rotating PATH.

    \b
    Example:
      vaultside rotation delete app/db
    """
    run_client(lambda c: c.delete_rotation_policy(path))
    click.echo(f"deleted rotation policy of {path}")


@cli.command("rotate")
@click.argument("path")
@_JSON
def rotate(path: str, as_json: bool) -> None:
    """Rotate PATH now (exit 1 if the rotation failed and was rolled back).

    \b
    Example:
      vaultside rotation rotate app/db
    """
    run = run_client(lambda c: c.rotate(path))
    if as_json:
        print_json(run)
    elif run.get("result") == "ok":
        click.echo(f"rotated {path}: version {run.get('version')}")
    if run.get("result") != "ok":
        fail(f"rotation of {path} failed at {run.get('step')}: {run.get('error')}", EXIT_ERROR)


@cli.command("status")
@click.argument("path")
@_JSON
def status(path: str, as_json: bool) -> None:
    """Current version, next run, last result and the version each consumer holds.

    Works for any path: without a rotation policy it shows the consumers alone.

    \b
    Example:
      vaultside rotation status app/db
    """
    doc = run_client(lambda c: c.rotation_status(path))
    if as_json:
        print_json(doc)
        return
    state = doc.get("state", {})
    fields: dict[str, object] = {"current version": doc.get("current_version")}
    if doc.get("policy") is None:
        fields["policy"] = "none (not rotated)"
    else:
        fields |= {
            "next run": state.get("next_run"),
            "last run": state.get("last_run"),
            "last result": state.get("last_result"),
            "last error": state.get("last_error"),
            "last rotated version": state.get("version"),
            "previous version": state.get("previous_version"),
            "in flight": doc.get("in_flight"),
        }
    for g in doc.get("grace", []):
        fields[f"version {g['version']} deleted at"] = g["until"]
    print_mapping(fields, title=f"rotation of {path}")
    rows = [
        (c["consumer"], c["kind"], c.get("container"), c["version"], c["current"], c["state"])
        for c in doc.get("consumers", [])
    ]
    if rows:
        print_table(("Consumer", "Kind", "Container", "Version", "Current", "State"), rows)


@cli.command("history")
@click.argument("path")
@click.option(
    "--limit",
    type=click.IntRange(1, 50),
    default=20,
    show_default=True,
    help="How many runs to show.",
)
@_JSON
def history(path: str, limit: int, as_json: bool) -> None:
    """Past rotation runs of PATH, newest first.

    \b
    Example:
      vaultside rotation history app/db --limit 5
    """
    runs = run_client(lambda c: c.rotation_history(path, limit=limit))
    if as_json:
        print_json(runs)
        return
    rows = [
        (r["started"], r["trigger"], r["result"], r.get("version"), r.get("step"), r.get("error"))
        for r in runs
    ]
    print_table(("Started", "Trigger", "Result", "Version", "Step", "Error"), rows)
