"""``vaultside rotation``: set/show/list/delete policies, rotate now, status, history.

A policy file is JSON or TOML (see ``docs/rotation.md``); ``-`` reads it from stdin.
"""

from __future__ import annotations

import json
import sys
import tomllib
from typing import Any

import click

from vaultside.cli.commands.secret import read_file_arg
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
from vaultside.client import VaultsideClient

_JSON = output_format()


def parse_policy_document(text: str, source: str) -> dict[str, Any]:
    """A policy object from JSON or TOML text."""
    doc: Any
    try:
        doc = json.loads(text)
    except ValueError:
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            fail(f"{source} is neither JSON nor TOML: {exc}", EXIT_INVALID)
    if not isinstance(doc, dict):
        fail(f"{source}: a rotation policy must be an object", EXIT_INVALID)
    return doc


def _call(method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    async def call(c: VaultsideClient) -> dict[str, Any]:
        _, obj, _ = await c.request(method, path, body=body)
        return obj

    return run_client(call)


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
    text = sys.stdin.read() if source == "-" else read_file_arg(source, "policy")
    doc = parse_policy_document(text, "stdin" if source == "-" else source)
    out = _call("PUT", f"rotation/policies/{path}", doc)
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
    render(_call("GET", f"rotation/policies/{path}")["policy"], title=f"rotation policy of {path}")


@cli.command("list")
@_JSON
def list_(as_json: bool) -> None:
    """List the paths that have a rotation policy.

    \b
    Example:
      vaultside rotation list
    """
    keys = _call("GET", "rotation/policies").get("keys", [])
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
    _call("DELETE", f"rotation/policies/{path}")
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
    run = _call("POST", f"rotation/rotate/{path}")["run"]
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
    doc = _call("GET", f"rotation/status/{path}")
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

    async def call(c: VaultsideClient) -> dict[str, Any]:
        _, obj, _ = await c.request("GET", f"rotation/history/{path}", params={"limit": str(limit)})
        return obj

    runs = run_client(call).get("runs", [])
    if as_json:
        print_json(runs)
        return
    rows = [
        (r["started"], r["trigger"], r["result"], r.get("version"), r.get("step"), r.get("error"))
        for r in runs
    ]
    print_table(("Started", "Trigger", "Result", "Version", "Step", "Error"), rows)
