"""``vaultside audit``: verify an audit file's hash chain, compute audit hashes of values."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from vaultside.audit.chain import verify_file
from vaultside.audit.hmac import AuditHasher, load_key
from vaultside.cli.render import EXIT_INVALID, exit_code_for, fail, print_json, print_table
from vaultside.errors import VaultsideError


@click.group("audit")
def cli() -> None:
    """Check audit logs and find values in them."""


@cli.command("verify")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable result.")
def verify(file: Path, as_json: bool) -> None:
    """Verify FILE's hash chain; exit 1 if a record was edited, removed, inserted or moved."""
    try:
        result = verify_file(file)
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror or type(exc).__name__}", EXIT_INVALID)
    if as_json:
        print_json(result.to_json())
    elif result.ok:
        click.echo(f"OK: {result.records} records, chain intact, last hash {result.last_hash}")
    else:
        rows = [p.removeprefix("line ").split(": ", 1) for p in result.problems]
        print_table(("Line", "Problem"), rows, title=f"{file}: {result.records} records")
    if not result.ok:
        lines = sorted({int(row.split(":", 1)[0].removeprefix("line ")) for row in result.problems})
        shown = ", ".join(str(n) for n in lines[:10]) + (", ..." if len(lines) > 10 else "")
        fail(
            f"audit chain broken: {len(result.problems)} problem(s) in {result.records}"
            f" records ({'line' if len(lines) == 1 else 'lines'} {shown})",
            1,
        )


@cli.command("hash")
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Audit HMAC key file (default: the server's, from settings and data dir).",
)
@click.argument("value", required=False)
def hash_value(key_file: Path | None, value: str | None) -> None:
    """Print the "hmac-sha256:..." an audit record would contain for VALUE.

    VALUE is read from stdin when omitted or "-" (so it stays out of argv and shell
    history); one trailing newline is dropped.
    """
    if value is None or value == "-":
        value = sys.stdin.read()
        value = value.removesuffix("\n").removesuffix("\r")
    try:
        path = key_file if key_file is not None else _default_key_file()
        key = load_key(path)
    except VaultsideError as exc:
        fail(exc.message, exit_code_for(exc))
    click.echo(AuditHasher(key).hash(value))


def _default_key_file() -> Path:
    # Imported here so `vaultside audit` stays usable even with a broken server config file.
    from vaultside.config.loader import ConfigError, load_settings
    from vaultside.wiring import audit_key_file

    try:
        settings = load_settings()
    except ConfigError as exc:
        fail(f"{exc.message} (or pass --key-file)", EXIT_INVALID)
    return audit_key_file(settings)
