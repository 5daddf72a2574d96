"""``vaultside operator``: initialise the seal, check seal status, rotate the barrier key,
and mint a root token offline.

``init`` and ``root-token`` work on the local data directory (same settings as ``serve``);
``seal-status``, ``rotate-key`` and ``leaders`` talk to a running server through
``VAULTSIDE_ADDR`` (and ``VAULTSIDE_TOKEN`` for rotate-key, which needs ``sudo`` on
``sys/rotate-key``, and leaders, which needs ``read`` on ``sys/leaders``).
"""

from __future__ import annotations

import asyncio
import sys

import click

from vaultside.cli.commands.migrate_storage import cli as migrate_storage
from vaultside.cli.render import (
    EXIT_INVALID,
    EXIT_SEALED_STATUS,
    fail,
    output_format,
    print_json,
    print_mapping,
    print_table,
    run_client,
)
from vaultside.cli.settings import settings_or_exit
from vaultside.config.settings import Settings
from vaultside.crypto.seal import init_key_file, init_passphrase_salt
from vaultside.errors import VaultsideError
from vaultside.wiring.seal import salt_file
from vaultside.wiring.server import build_services


def _settings() -> Settings:
    return settings_or_exit()


@click.group("operator")
def cli() -> None:
    """Seal initialisation, status, key rotation and offline root tokens."""


@cli.command("init")
def init() -> None:
    """Create the root key file (or passphrase salt); refuses to overwrite.

    \b
    Example:
      VAULTSIDE_DATA_DIR=/var/lib/vaultside vaultside operator init
    """
    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        if settings.seal.kind == "file":
            path = settings.resolve(settings.seal.key_file)
            init_key_file(path)
            click.echo(f"Created root key file {path} (mode 0600). Back it up somewhere safe:")
            click.echo("without it the data cannot be decrypted.")
        elif settings.seal.kind == "passphrase":
            path = salt_file(settings)
            init_passphrase_salt(path)
            click.echo(f"Created passphrase salt {path}; the passphrase file unlocks the data.")
        else:
            fail(f"seal kind {settings.seal.kind!r} needs no local initialisation", EXIT_INVALID)
    except VaultsideError as exc:
        fail(exc.message, EXIT_INVALID)


@cli.command("seal-status")
@output_format()
def seal_status(as_json: bool) -> None:
    """Show whether the server at VAULTSIDE_ADDR is sealed, and why.

    \b
    Example:
      vaultside operator seal-status --format json
    """
    # The image's HEALTHCHECK: report now, no retry.
    status = run_client(lambda c: c.seal_status(), probe=True)
    if as_json:
        print_json(status)
    else:
        print_mapping(status, "Seal status")
    if status.get("sealed"):
        sys.exit(EXIT_SEALED_STATUS)


@cli.command("rotate-key")
@output_format()
def rotate_key(as_json: bool) -> None:
    """Start a new barrier key term; the server re-encrypts old records in the background.

    \b
    Example:
      vaultside operator rotate-key
    """
    result = run_client(lambda c: c.rotate_key())
    if as_json:
        print_json(result)
        return
    click.echo(f"Active key term is now {result.get('term')}; rewrap runs in the background.")
    click.echo("Follow it with GET /v1/sys/key-status.")


@cli.command("leaders")
@output_format()
def leaders(as_json: bool) -> None:
    """Which server leads each leader-only job, since and until when (read on sys/leaders).

    \b
    Example:
      vaultside operator leaders --format json
    """
    leaders = run_client(lambda c: c.leaders())
    if as_json:
        print_json({"leaders": leaders})
        return
    rows = [
        (
            item["job"],
            item["holder"] or ("-" if item["enabled"] else "(disabled here)"),
            item["since"] or "-",
            item["until"] or "-",
        )
        for item in leaders
    ]
    print_table(("job", "holder", "since", "until"), rows, title="Leaders")


@cli.command("root-token")
@click.option(
    "--display-name", default="root", show_default=True, help="Name shown in token lookups."
)
def root_token(display_name: str) -> None:
    """Create a root token offline from the local data dir and key; printed once.

    For bootstrapping a non-dev server: run it where the server's settings, data dir and
    seal are available. Revoke the token once you have created narrower ones.

    \b
    Example:
      vaultside operator root-token --display-name bootstrap
    """

    async def create() -> str:
        services = build_services(_settings())
        await services.open()
        try:
            await services.barrier.unseal()
            token, _ = await services.tokens.create_root(display_name=display_name)
            return token
        finally:
            await services.close()

    try:
        token = asyncio.run(create())
    except VaultsideError as exc:
        fail("; ".join(exc.public_messages()), EXIT_INVALID)
    click.echo(f"Root token: {token}")


cli.add_command(migrate_storage)
