"""``vaultside jwt``: log in with a JWT (a Kubernetes ServiceAccount token) and manage roles.

The JWT is a credential: it is read from a file (``--jwt-file``, ``-`` for stdin), never
from argv. Managing roles needs ``sudo`` on ``auth/jwt/roles/<name>``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from vaultside.cli.render import (
    EXIT_INVALID,
    fail,
    output_format,
    print_auth,
    print_json,
    print_mapping,
    render,
    run_client,
)


def _claims(pairs: tuple[str, ...]) -> dict[str, list[str]]:
    claims: dict[str, list[str]] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            fail(f"--claim expects NAME=VALUE, got {pair[:40]!r}", EXIT_INVALID)
        claims.setdefault(name, []).append(value)
    return claims


def read_jwt(source: str) -> str:
    """The JWT in file ``source`` (``-``: stdin), stripped; exits 2 if empty or unreadable."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
    except OSError as exc:
        fail(f"cannot read the JWT file {source}: {exc.strerror}", EXIT_INVALID)
    if not text.strip():
        fail(f"the JWT file {source} is empty", EXIT_INVALID)
    return text.strip()


@click.group("jwt")
def cli() -> None:
    """Log in with a Kubernetes ServiceAccount token (JWT); manage JWT roles (sudo)."""


@cli.command("login")
@click.option("--role", required=True, help="The JWT role to log in with.")
@click.option(
    "--jwt-file",
    default="/var/run/secrets/tokens/vaultside",
    show_default=True,
    help="File holding the JWT ('-' for stdin).",
)
@click.option("--field", type=click.Choice(["token", "accessor"]), default=None,
              help="Print only this field (for scripts).")  # fmt: skip
@output_format()
def login(role: str, jwt_file: str, field: str | None, as_json: bool) -> None:
    """Exchange the JWT for a vaultside token of ROLE; the token is shown only now.

    \b
    Example:
      vaultside jwt login --role web --field token
    """
    token = read_jwt(jwt_file)
    auth = run_client(lambda c: c.jwt_login(role, token))
    print_auth(auth, field, as_json, title="logged in (the token is shown only once)")


@cli.group("role")
def role() -> None:
    """Manage JWT roles: which ServiceAccounts get which policies."""


@role.command("write")
@click.argument("name")
@click.option("--policy", "policies", multiple=True, help="Policy name (repeatable).")
@click.option("--ttl", default="1h", show_default=True, help="Token TTL (seconds or 15m).")
@click.option("--sa-name", "names", multiple=True,
              help="Bound ServiceAccount name, glob allowed (repeatable).")  # fmt: skip
@click.option("--sa-namespace", "namespaces", multiple=True,
              help="Bound namespace, glob allowed (repeatable).")  # fmt: skip
@click.option("--audience", "audiences", multiple=True,
              help="Accepted aud (repeatable; default: auth.jwt.audiences).")  # fmt: skip
@click.option("--claim", "claims", multiple=True,
              help="Bound claim NAME=VALUE; NAME may be a /a/b pointer (repeatable).")  # fmt: skip
def write(
    name: str,
    policies: tuple[str, ...],
    ttl: str,
    names: tuple[str, ...],
    namespaces: tuple[str, ...],
    audiences: tuple[str, ...],
    claims: tuple[str, ...],
) -> None:
    """Create or replace role NAME.

    \b
    Example:
      vaultside jwt role write web --policy app-read --sa-name web --sa-namespace apps
    """
    doc: dict[str, Any] = {
        "policies": list(policies),
        "ttl": float(ttl) if ttl.replace(".", "", 1).isdigit() else ttl,
        "bound_service_account_names": list(names),
        "bound_service_account_namespaces": list(namespaces),
        "bound_audiences": list(audiences),
        "bound_claims": _claims(claims),
    }

    run_client(lambda c: c.write_jwt_role(name, doc))
    click.echo(f"wrote JWT role {name}")


@role.command("read")
@click.argument("name")
@output_format()
def read(name: str, as_json: bool) -> None:
    """Show role NAME.

    \b
    Example:
      vaultside jwt role read web --format json
    """

    doc = run_client(lambda c: c.read_jwt_role(name))
    if as_json:
        print_json(doc)
    else:
        print_mapping(doc, title=f"JWT role {name}")


@role.command("list")
@output_format()
def list_(as_json: bool) -> None:
    """List role names.

    \b
    Example:
      vaultside jwt role list
    """

    render(run_client(lambda c: c.list_jwt_roles()))  # JSON, or one name per line


@role.command("delete")
@click.argument("name")
def delete(name: str) -> None:
    """Delete role NAME.

    \b
    Example:
      vaultside jwt role delete web
    """

    run_client(lambda c: c.delete_jwt_role(name))
    click.echo(f"deleted JWT role {name}")
