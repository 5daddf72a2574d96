"""``vaultside secret``: put, get, list, delete, undelete, destroy, versions, metadata.

Values never need to be in argv: ``field=@file`` reads a file, ``field=-`` reads stdin, and
``put PATH`` with no fields reads a JSON object from stdin.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TextIO

import click

from vaultside.cli.render import (
    EXIT_INVALID,
    EXIT_NOT_FOUND,
    fail,
    output_format,
    print_json,
    print_mapping,
    print_raw,
    print_table,
    run_client,
)
from vaultside.client import NotModified, VaultsideClient
from vaultside.clock import rfc3339
from vaultside.kv.models import SecretMeta, VersionMeta


def parse_assignments(pairs: tuple[str, ...], stdin: TextIO) -> dict[str, str]:
    """``field=value``, ``field=@file``, ``field=-`` (stdin, at most once) → a data dict.

    Values read from files and stdin are kept byte-exact (no newline is stripped).
    """
    data: dict[str, str] = {}
    used_stdin = False
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            fail(f"expected FIELD=VALUE, FIELD=@FILE or FIELD=-, got {name[:40]!r}", EXIT_INVALID)
        if name in data:
            fail(f"field {name!r} given twice", EXIT_INVALID)
        if value == "-":
            if used_stdin:
                fail("only one field can be read from stdin", EXIT_INVALID)
            used_stdin = True
            if stdin.isatty():  # interactive: ask without echo rather than wait silently
                value = click.prompt(name, hide_input=True, prompt_suffix=": ", err=True)
            else:
                value = stdin.read()
        elif value.startswith("@"):
            value = read_file_arg(value[1:], f"field {name!r}")
        data[name] = value
    return data


def read_file_arg(path: str, what: str) -> str:
    """The UTF-8 text of a file named on the command line, or a one-line error."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read {what} from {path}: {exc.strerror or exc}", EXIT_INVALID)
    except UnicodeDecodeError:
        fail(f"{what}: {path} is not UTF-8 text", EXIT_INVALID)


def read_source(source: str, what: str) -> tuple[str, str]:
    """(text, name) of a FILE argument, or of stdin for ``-``."""
    if source == "-":
        return sys.stdin.read(), "stdin"
    return read_file_arg(source, what), source


def parse_stdin_object(stdin: TextIO) -> dict[str, str]:
    """A JSON object of string fields from stdin."""
    try:
        obj = json.loads(stdin.read())
    except ValueError:
        fail("stdin is not a JSON object (give FIELD=VALUE pairs or pipe JSON)", EXIT_INVALID)
    if not isinstance(obj, dict) or not all(isinstance(v, str) for v in obj.values()):
        fail("stdin must be a JSON object of string values", EXIT_INVALID)
    return {str(k): v for k, v in obj.items()}


def parse_versions(text: str | None) -> list[int] | None:
    """``"1,3,4"`` → ``[1, 3, 4]``."""
    if text is None:
        return None
    try:
        versions = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        fail(f"--versions must be comma-separated integers, got {text[:40]!r}", EXIT_INVALID)
    if not versions or any(v < 1 for v in versions):
        fail("--versions must list positive integers", EXIT_INVALID)
    return versions


def _version_row(v: VersionMeta) -> tuple[object, ...]:
    state = "destroyed" if v.destroyed else ("deleted" if v.deletion_time is not None else "live")
    deleted = "-" if v.deletion_time is None else rfc3339(v.deletion_time)
    return (v.version, rfc3339(v.created_time), deleted, state)


def _meta_json(meta: SecretMeta) -> dict[str, object]:
    """The metadata as this command prints it: the API's shape, with ``secret_type`` for
    ``type`` and the versions keyed by number."""
    obj = {"secret_type" if k == "type" else k: v for k, v in meta.to_json().items()}
    obj["versions"] = {n: v.to_json() for n, v in sorted(meta.versions.items())}
    return obj


def _print_metadata(meta: SecretMeta, as_json: bool) -> None:
    obj = _meta_json(meta)
    if as_json:
        print_json(obj)
        return
    obj.pop("versions")
    print_mapping(obj, title=f"metadata of {meta.path}")
    rows = [_version_row(v) for _, v in sorted(meta.versions.items())]
    print_table(("Version", "Created", "Deleted", "State"), rows)


def _change_versions(
    path: str,
    versions: str,
    change: Callable[[VaultsideClient], Callable[[str, list[int]], Awaitable[None]]],
    done: str,
) -> None:
    """Undelete or destroy ``--versions`` of ``path`` and say so."""
    wanted = parse_versions(versions) or []
    run_client(lambda c: change(c)(path, wanted))
    click.echo(f"{done} {path} versions {versions}")


json_option = output_format()


@click.group("secret")
def cli() -> None:
    """Read and write versioned secrets (server from VAULTSIDE_ADDR / VAULTSIDE_TOKEN)."""


@cli.command("put")
@click.argument("path")
@click.argument("fields", nargs=-1)
@click.option("--cas", type=int, default=None, help="Only write if the current version is N.")
@click.option("--type", "secret_type", default=None, help="password, token, certificate, ...")
@json_option
def put(
    path: str, fields: tuple[str, ...], cas: int | None, secret_type: str | None, as_json: bool
) -> None:
    """Write a new version: FIELD=VALUE, FIELD=@FILE, FIELD=- (stdin), or JSON on stdin.

    \b
    Example:
      vaultside secret put app/db user=app password=@password.txt
    """
    stdin = sys.stdin
    if not fields and stdin.isatty():
        fail("give FIELD=VALUE pairs, or pipe a JSON object on stdin", EXIT_INVALID)
    data = parse_assignments(fields, stdin) if fields else parse_stdin_object(stdin)
    if not data:
        fail("no fields to write", EXIT_INVALID)

    meta = run_client(lambda c: c.write_secret(path, data, cas=cas, secret_type=secret_type))
    if as_json:
        print_json(meta.to_json())
    else:
        click.echo(f"wrote {path} version {meta.version}")


@cli.command("get")
@click.argument("path")
@click.option("--version", "version", type=int, default=None, help="Read this version.")
@click.option("--field", default=None, help="Print only this field's raw value.")
@json_option
def get(path: str, version: int | None, field: str | None, as_json: bool) -> None:
    """Read a secret (latest version unless --version).

    \b
    Example:
      vaultside secret get app/db --field password
    """

    secret = run_client(lambda c: c.read_secret(path, version=version))
    if isinstance(secret, NotModified):  # cannot happen: no etag was sent
        fail("unexpected 304 Not Modified")
    if field is not None:
        if field not in secret.data:
            fail(f"secret {path} has no field {field!r}", EXIT_NOT_FOUND)
        print_raw(secret.data[field])
    elif as_json:
        print_json({"data": secret.data, "metadata": secret.metadata.to_json()})
    else:
        print_mapping(secret.data, title=f"{path} (version {secret.metadata.version})")


@cli.command("list")
@click.argument("prefix", default="")
@json_option
def list_(prefix: str, as_json: bool) -> None:
    """List keys directly under PREFIX (sub-directories end with '/').

    \b
    Example:
      vaultside secret list app/
    """

    keys = run_client(lambda c: c.list_secrets(prefix))
    if as_json:
        print_json(keys)
    else:
        for key in keys:
            click.echo(key)


@cli.command("delete")
@click.argument("path")
@click.option("--versions", default=None, help="Comma-separated versions (default: latest).")
def delete(path: str, versions: str | None) -> None:
    """Soft-delete the latest version (or --versions); undelete can restore it.

    \b
    Example:
      vaultside secret delete app/db --versions 1,2
    """
    wanted = parse_versions(versions)
    run_client(lambda c: c.delete_secret(path, wanted))
    click.echo(f"deleted {path}" + (f" versions {versions}" if versions else ""))


@cli.command("undelete")
@click.argument("path")
@click.option("--versions", required=True, help="Comma-separated versions to restore.")
def undelete(path: str, versions: str) -> None:
    """Restore soft-deleted versions.

    \b
    Example:
      vaultside secret undelete app/db --versions 2
    """
    _change_versions(path, versions, lambda c: c.undelete_secret, "undeleted")


@cli.command("destroy")
@click.argument("path")
@click.option("--versions", required=True, help="Comma-separated versions to destroy.")
def destroy(path: str, versions: str) -> None:
    """Permanently destroy versions (cannot be undone).

    \b
    Example:
      vaultside secret destroy app/db --versions 1
    """
    _change_versions(path, versions, lambda c: c.destroy_secret, "destroyed")


@cli.command("versions")
@click.argument("path")
@json_option
def versions_(path: str, as_json: bool) -> None:
    """Show every kept version and its state.

    \b
    Example:
      vaultside secret versions app/db
    """
    infos = run_client(lambda c: c.secret_versions(path))
    if as_json:
        print_json([v.to_json() for v in infos])
    else:
        print_table(("Version", "Created", "Deleted", "State"), map(_version_row, infos), path)


@cli.command("metadata")
@click.argument("path")
@click.option("--max-versions", type=int, default=None, help="Set how many versions to keep.")
@click.option("--cas-required/--no-cas-required", default=None, help="Require --cas on writes.")
@click.option("--type", "secret_type", default=None, help="Set the secret type.")
@click.option("--custom", multiple=True, help="Set custom metadata KEY=VALUE (repeatable).")
@click.option("--delete-all", is_flag=True, help="Delete every version and the metadata.")
@json_option
def metadata(
    path: str,
    max_versions: int | None,
    cas_required: bool | None,
    secret_type: str | None,
    custom: tuple[str, ...],
    delete_all: bool,
    as_json: bool,
) -> None:
    """Show a secret's metadata, or change it with the options.

    \b
    Example:
      vaultside secret metadata app/db --max-versions 5
    """
    custom_map: dict[str, str] | None = None
    if custom:
        custom_map = {}
        for pair in custom:
            k, sep, v = pair.partition("=")
            if not sep or not k:
                fail(f"--custom expects KEY=VALUE, got {pair[:40]!r}", EXIT_INVALID)
            custom_map[k] = v
    changing = any(x is not None for x in (max_versions, cas_required, secret_type, custom_map))
    if delete_all and changing:
        fail("--delete-all cannot be combined with other changes", EXIT_INVALID)

    async def call(c: VaultsideClient) -> SecretMeta | None:
        if delete_all:
            await c.delete_metadata(path)
            return None
        if changing:
            return await c.write_metadata(
                path,
                max_versions=max_versions,
                custom_metadata=custom_map,
                secret_type=secret_type,
                cas_required=cas_required,
            )
        return await c.read_metadata(path)

    meta = run_client(call)
    if meta is None:
        click.echo(f"deleted {path} and all its versions")
    else:
        _print_metadata(meta, as_json)
