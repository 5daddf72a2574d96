"""``vaultside token``: create, lookup, revoke, renew.

Tokens are never taken from argv: another token is read from stdin (``-``) or named by
its accessor; ``create`` prints the new token once (``--field token`` for scripts).
"""

from __future__ import annotations

import sys
from typing import Any

import click

from vaultside.cli.render import (
    EXIT_INVALID,
    fail,
    output_format,
    print_auth,
    print_json,
    print_mapping,
    run_client,
)
from vaultside.client import TokenAuth, VaultsideClient


def _parse_meta(pairs: tuple[str, ...]) -> dict[str, str]:
    meta: dict[str, str] = {}
    for pair in pairs:
        k, sep, v = pair.partition("=")
        if not sep or not k:
            fail(f"--meta expects KEY=VALUE, got {pair[:40]!r}", EXIT_INVALID)
        meta[k] = v
    return meta


def _parse_ttl(text: str | None) -> str | float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return text  # a duration such as "1h"; the server validates it


def _token_from_stdin(arg: str | None) -> str | None:
    if arg is None:
        return None
    if arg != "-":
        # SECURITY: a token in argv shows in `ps` and shell history; refuse it.
        fail("pass the token on stdin as '-', or use --accessor", EXIT_INVALID)
    token = sys.stdin.read().strip()
    if not token:
        fail("no token on stdin", EXIT_INVALID)
    return token


@click.group("token")
def cli() -> None:
    """Create, inspect, renew and revoke tokens."""


@cli.command("create")
@click.option("--policy", "policies", multiple=True, help="Policy name (repeatable).")
@click.option("--ttl", default=None, help="Time to live: seconds or a duration like 1h.")
@click.option(
    "--max-uses", type=int, default=0, help="Uses before the token expires (0: no limit)."
)
@click.option("--display-name", default="", help="A human-readable name.")
@click.option("--renewable/--no-renewable", default=True, help="Whether the token can be renewed.")
@click.option("--meta", multiple=True, help="Metadata KEY=VALUE (repeatable).")
@click.option(
    "--field",
    type=click.Choice(["token", "accessor"]),
    default=None,
    help="Print only this field's raw value.",
)
@output_format()
def create(
    policies: tuple[str, ...],
    ttl: str | None,
    max_uses: int,
    display_name: str,
    renewable: bool,
    meta: tuple[str, ...],
    field: str | None,
    as_json: bool,
) -> None:
    """Create a child token of the current token; its value is shown only now.

    \b
    Example:
      vaultside token create --policy app-read --ttl 1h --field token
    """
    meta_map = _parse_meta(meta)

    async def call(c: VaultsideClient) -> TokenAuth:
        return await c.create_token(
            policies=list(policies),
            ttl=_parse_ttl(ttl),
            max_uses=max_uses,
            display_name=display_name,
            renewable=renewable,
            meta=meta_map,
        )

    print_auth(
        run_client(call), field, as_json, title="token created (the token is shown only once)"
    )


@cli.command("lookup")
@click.argument("token", required=False)
@click.option("--accessor", default=None, help="Look up the token with this accessor.")
@output_format()
def lookup(token: str | None, accessor: str | None, as_json: bool) -> None:
    """Show a token's info: your own, '-' (a token on stdin), or --accessor.

    \b
    Example:
      vaultside token lookup --accessor "$ACCESSOR"
    """
    other = _token_from_stdin(token)
    if other is not None and accessor is not None:
        fail("give either '-' or --accessor, not both", EXIT_INVALID)

    async def call(c: VaultsideClient) -> dict[str, Any]:
        if other is None and accessor is None:
            return await c.lookup_self()
        return await c.lookup_token(token=other, accessor=accessor)

    info = run_client(call)
    if as_json:
        print_json(info)
    else:
        print_mapping(info, title="token")


@cli.command("revoke")
@click.argument("token", required=False)
@click.option("--accessor", default=None, help="Revoke the token with this accessor.")
@click.option("--self", "self_", is_flag=True, help="Revoke the token you are using.")
def revoke(token: str | None, accessor: str | None, self_: bool) -> None:
    """Revoke a token and its children: '-' (on stdin), --accessor, or --self.

    \b
    Example:
      vaultside token revoke --accessor "$ACCESSOR"
    """
    other = _token_from_stdin(token)
    if sum(x is not None for x in (other, accessor)) + int(self_) != 1:
        fail("give exactly one of '-' (token on stdin), --accessor or --self", EXIT_INVALID)

    async def call(c: VaultsideClient) -> None:
        if self_:
            await c.revoke_self()
        else:
            await c.revoke_token(token=other, accessor=accessor)

    run_client(call)
    click.echo("revoked")


@cli.command("renew")
@click.option("--accessor", default=None, help="Renew the token with this accessor.")
@click.option("--increment", default=None, help="Requested extension: seconds or e.g. 1h.")
@output_format()
def renew(accessor: str | None, increment: str | None, as_json: bool) -> None:
    """Renew your own token, or another by --accessor.

    \b
    Example:
      vaultside token renew --increment 1h
    """
    inc = _parse_ttl(increment)

    async def call(c: VaultsideClient) -> dict[str, Any]:
        if accessor is None:
            return await c.renew_self(inc)
        return await c.renew_token(accessor, inc)

    info = run_client(call)
    if as_json:
        print_json(info)
    else:
        print_mapping(info, title="token renewed")
