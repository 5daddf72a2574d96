"""``vaultside broker``: read Vault/OpenBao secrets through a vaultside server's brokers."""

from __future__ import annotations

import click

from vaultside.cli.render import (
    EXIT_INVALID,
    EXIT_NOT_FOUND,
    fail,
    output_format,
    print_json,
    print_mapping,
    print_raw,
    render,
    run_client,
)
from vaultside.errors import InvalidRequestError
from vaultside.refs import vault_ref


def _target(target: str) -> tuple[str, str, str]:
    """(broker, mount, path) of a ``BROKER/MOUNT/PATH`` argument; exits 2 if malformed."""
    broker, _, rest = target.partition("/")
    mount, _, path = rest.partition("/")
    try:
        ref = vault_ref(broker, mount, path)
    except InvalidRequestError as exc:
        fail(f"{target!r} is not BROKER/MOUNT/PATH ({exc.message})", EXIT_INVALID)
    return ref.broker or "", ref.mount or "", ref.path


@click.group("broker")
def cli() -> None:
    """Read secrets from Vault/OpenBao through vaultside (no Vault token needed)."""


@cli.command("read")
@click.argument("target", metavar="BROKER/MOUNT/PATH")
@click.option("--version", "version", type=int, default=None, help="KV v2 version to read.")
@click.option("--field", default=None, help="Print only this field's raw value.")
@output_format()
def read(target: str, version: int | None, field: str | None, as_json: bool) -> None:
    """Read a brokered secret, e.g. ``corp/secret/app/db`` or ``corp/database/creds/app``.

    \b
    Example:
      vaultside broker read corp/secret/app/db --field password
    """
    where = _target(target)
    secret = run_client(lambda c: c.read_brokered(*where, version=version))
    data, stale = secret.data, secret.stale
    if stale:
        click.echo("Warning: the upstream is unreachable; this value is stale", err=True)
    if field is not None:
        if field not in data:
            fail(f"{target} has no field {field!r}", EXIT_NOT_FOUND)
        print_raw(data[field])
    elif as_json:
        print_json(secret.to_json())
    else:
        meta = secret.metadata
        version_note = f", version {meta['version']}" if meta.get("version") else ""
        print_mapping(data, title=f"{target} ({meta.get('kind')}{version_note})")
        if secret.lease:
            print_mapping(secret.lease, title="lease")


@cli.command("metadata")
@click.argument("target", metavar="BROKER/MOUNT/PATH")
@output_format(dest=None, default="json")  # printed JSON only before: scripts keep it
def metadata(target: str) -> None:
    """Print a KV v2 secret's metadata (versions and times, no values).

    \b
    Example:
      vaultside broker metadata corp/secret/app/db --format json
    """
    where = _target(target)
    render(run_client(lambda c: c.read_brokered_metadata(*where)), title=f"metadata of {target}")
