"""``vaultside operator migrate-storage``: copy all records SQLite ⇄ PostgreSQL and verify.

Registered into the ``operator`` group. Works offline on ciphertext (no root key needed);
stop the servers on the source first. The PostgreSQL DSN comes from a file or the usual
settings (``storage.postgres_dsn_file`` / ``VAULTSIDE_STORAGE__POSTGRES_DSN``), never argv.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from vaultside.cli.render import (
    EXIT_CONFLICT,
    EXIT_ERROR,
    EXIT_INVALID,
    fail,
    output_format,
    print_json,
)
from vaultside.cli.settings import settings_or_exit
from vaultside.config.settings import Settings
from vaultside.errors import ConflictError, IntegrityError, VaultsideError
from vaultside.storage.base import StorageBackend
from vaultside.storage.migrate import MigrationReport, migrate, verify
from vaultside.wiring.storage import STORAGE_KINDS, build_storage

KINDS = tuple(STORAGE_KINDS)


def _backend(
    kind: str, settings: Settings, sqlite_path: Path | None, dsn_file: Path | None
) -> StorageBackend:
    """A backend of ``kind`` through the storage registry, with this command's overrides."""
    # A one-off copy needs two connections at most; paths given here are relative to the cwd.
    update: dict[str, object] = {"kind": kind, "postgres_pool_min": 1, "postgres_pool_max": 2}
    if sqlite_path is not None:
        update["path"] = sqlite_path.absolute()
    if dsn_file is not None:
        # SECURITY: the DSN (it may hold a password) is read from a file or settings, not argv.
        update["postgres_dsn_file"] = dsn_file.absolute()
    storage = settings.storage.model_copy(update=update)
    return build_storage(settings.model_copy(update={"storage": storage}))


async def _run(
    source: StorageBackend, destination: StorageBackend, force: bool, verify_only: bool
) -> MigrationReport:
    await source.open()
    try:
        await destination.open()
        try:
            if verify_only:
                src, dst = await verify(source, destination)
                return MigrationReport(0, 0, src, dst)
            return await migrate(
                source,
                destination,
                force=force,
                progress=_progress if sys.stderr.isatty() else None,
            )
        finally:
            await destination.close()
    finally:
        await source.close()


def _progress(copied: int) -> None:
    # Only for a person watching a terminal: piped runs get the summary alone, on stdout.
    click.echo(f"copied {copied} records…", err=True)


@click.command("migrate-storage")
@click.option("--from", "from_kind", type=click.Choice(KINDS), required=True, help="Source kind.")
@click.option("--to", "to_kind", type=click.Choice(KINDS), required=True, help="Destination kind.")
@click.option(
    "--sqlite-path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQLite file (default: storage.path in the data dir).",
)
@click.option(
    "--postgres-dsn-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="File holding the PostgreSQL DSN (default: storage.postgres_dsn(_file)).",
)
@click.option("--force", is_flag=True, help="Replace the contents of a non-empty destination.")
@click.option("--verify-only", is_flag=True, help="Only compare source and destination.")
@output_format()
def cli(
    from_kind: str,
    to_kind: str,
    sqlite_path: Path | None,
    postgres_dsn_file: Path | None,
    force: bool,
    verify_only: bool,
    as_json: bool,
) -> None:
    """Copy every encrypted record from one storage backend to the other, then verify.

    \b
    Example:
      vaultside operator migrate-storage --from sqlite --to postgres
    """
    if from_kind == to_kind:
        fail("--from and --to must differ (sqlite → postgres or postgres → sqlite)", EXIT_INVALID)
    settings = settings_or_exit()
    if from_kind == "sqlite" or to_kind == "sqlite":
        path = sqlite_path or settings.resolve(settings.storage.path)
        if from_kind == "sqlite" and not path.exists():
            fail(f"no SQLite database at {path}", EXIT_INVALID)
    try:
        source = _backend(from_kind, settings, sqlite_path, postgres_dsn_file)
        destination = _backend(to_kind, settings, sqlite_path, postgres_dsn_file)
        report = asyncio.run(_run(source, destination, force, verify_only))
    except IntegrityError as exc:
        # A local operator command: the message holds counts only (no keys, no values).
        fail(exc.message, EXIT_ERROR)
    except ConflictError as exc:
        fail(exc.message, EXIT_CONFLICT)
    except VaultsideError as exc:
        fail("; ".join(exc.public_messages()), EXIT_INVALID)
    except OSError as exc:
        fail(f"cannot read the DSN file: {exc.strerror or type(exc).__name__}", EXIT_INVALID)
    src, dst = report.source, report.destination
    if as_json:
        print_json(
            {
                "copied": report.copied,
                "removed": report.removed,
                "verified": True,
                "source": {"count": src.count, "bytes": src.value_bytes, "digest": src.digest},
                "destination": {"count": dst.count, "bytes": dst.value_bytes, "digest": dst.digest},
            }
        )
        return
    if not verify_only:
        click.echo(f"Copied {report.copied} records {from_kind} → {to_kind}", nl=False)
        click.echo(f" (removed {report.removed} first)." if report.removed else ".")
    click.echo(f"Verified: {dst.count} records, {dst.value_bytes} bytes, digest {dst.digest}.")
