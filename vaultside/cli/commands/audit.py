"""``vaultside audit``: verify an audit chain (structure, or keyed and anchored with
``--data-dir``), compute audit hashes of values."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from vaultside.audit.chain import Link
from vaultside.audit.hmac import AuditHasher, load_key
from vaultside.audit.verify import verify_chain
from vaultside.cli.render import (
    EXIT_INVALID,
    exit_code_for,
    fail,
    output_format,
    print_json,
    print_table,
)
from vaultside.errors import VaultsideError


@click.group("audit")
def cli() -> None:
    """Check audit logs and find values in them."""


@cli.command("verify")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@output_format()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="The server's data dir: unseal its storage (settings, seal) to check every record's"
    " MAC and the anchored last link. Without it only the structure is checked.",
)
@click.option(
    "--chain-id",
    help="With --data-dir: whose anchor to check (default: the server's, from settings:"
    " audit.chain_id, else <hostname>:<audit file path>).",
)
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A chain key file to check every record's MAC with, instead of --data-dir: the"
    " volume plugin's admission audit keeps its chain key in FILE.chain.key.",
)
@click.option("--no-rotated", is_flag=True, help="Check FILE alone, not its rotated files.")
def verify(
    file: Path,
    as_json: bool,
    data_dir: Path | None,
    chain_id: str | None,
    key_file: Path | None,
    no_rotated: bool,
) -> None:
    """Verify FILE's chain (after its rotated FILE.<seq> files); exit 1 on any problem.

    Detects edited, removed, inserted and moved records; with --data-dir also records
    re-chained without the key, a truncated tail, a deleted file and a restarted chain;
    with --key-file also records re-chained without the key.

    \b
    Examples:
      vaultside audit verify /var/lib/vaultside/audit.log --data-dir /var/lib/vaultside
      vaultside audit verify inject-audit.log --key-file inject-audit.log.chain.key
    """
    key: bytes | None = None
    anchor: Link | None = None
    if data_dir is not None and key_file is not None:
        fail("pass --data-dir or --key-file, not both", EXIT_INVALID)
    if key_file is not None:
        try:
            key = load_key(key_file)
        except VaultsideError as exc:
            fail(exc.message, exit_code_for(exc))
    if data_dir is not None:
        try:
            key, anchor = asyncio.run(_chain_material(data_dir, chain_id))
        except VaultsideError as exc:
            fail(f"cannot read the chain key from {data_dir}: {exc.message}", exit_code_for(exc))
        if key is None:
            # SECURITY: asked for a keyed check; never fall back to structure silently.
            fail(f"no audit chain key in the storage of {data_dir}: cannot check MACs", 1)
    try:
        result = verify_chain(
            file,
            key=key,
            anchor=anchor,
            rotated=not no_rotated,
            every_keyed=key_file is not None,  # a key file's log is keyed from its first record
        )
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror or type(exc).__name__}", EXIT_INVALID)
    if as_json:
        print_json(result.to_json())
    elif result.ok:
        mode = (
            "keyed and anchored"
            if key is not None and anchor is not None
            else ("keyed" if key is not None else "structure only")
        )
        click.echo(
            f"OK: {result.records} records in {len(result.files)} file(s), chain intact"
            f" ({mode}), last hash {result.last_hash}"
        )
    else:
        rows = [p.split(": ", 1) for p in result.problems]
        print_table(("Where", "Problem"), rows, title=f"{file}: {result.records} records")
    if not as_json:
        for note in result.notes:
            click.echo(f"note: {note}", err=True)
    if not result.ok:
        wheres = list(dict.fromkeys(p.split(": ", 1)[0] for p in result.problems))
        shown = ", ".join(w.removeprefix("line ") for w in wheres[:10])
        shown += ", ..." if len(wheres) > 10 else ""
        noun = "line" if len(wheres) == 1 else "lines"
        count = len(result.problems)
        fail(
            f"audit chain broken: {count} problem(s) in {result.records} records ({noun} {shown})",
            1,
        )


async def _chain_material(data_dir: Path, chain_id: str | None) -> tuple[bytes | None, Link | None]:
    # Imported here so `vaultside audit hash` and structure checks need no server config.
    from vaultside.audit.anchor import load_anchor
    from vaultside.audit.anchor import load_key as load_chain_key
    from vaultside.config.settings import Settings
    from vaultside.crypto.barrier import Barrier
    from vaultside.wiring.audit import audit_chain_id
    from vaultside.wiring.keyspace import view
    from vaultside.wiring.seal import build_seal
    from vaultside.wiring.storage import build_storage

    settings = Settings(data_dir=data_dir)
    chain_id = chain_id or audit_chain_id(settings)
    barrier = Barrier(build_storage(settings), build_seal(settings))
    await barrier.open()
    try:
        await barrier.unseal()
        audit = view(barrier, "audit")
        return await load_chain_key(audit), await load_anchor(audit, chain_id)
    finally:
        await barrier.close()


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

    \b
    Example:
      printf %s "$VALUE" | vaultside audit hash
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
    from vaultside.wiring.audit import audit_key_file

    try:
        settings = load_settings()
    except ConfigError as exc:
        fail(f"{exc.message} (or pass --key-file)", EXIT_INVALID)
    return audit_key_file(settings)
