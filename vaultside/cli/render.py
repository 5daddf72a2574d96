"""Shared CLI output: one ``--format`` option, one renderer, and the one error boundary.

Every command that prints data takes ``--format`` through ``output_format`` (``table`` and
``json``; ``sarif`` for scans), defaulting to ``$VAULTSIDE_FORMAT``, then ``table``; the old
``--json`` flag stays as a hidden, deprecated alias of ``--format json``. Tables are rich tables
on a terminal and plain aligned text (no box-drawing characters) when stdout is not one.

Exit codes are defined here (``EXIT_*``) and described in ``EXIT_CODES`` (rendered into
``docs/cli.md``). Every command that talks to a server goes through ``run_client``: errors
become ONE line on stderr (``Error: <message>``) and an exit code by kind, never a traceback.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, NoReturn, TypeVar

import click

from vaultside import errors

if TYPE_CHECKING:
    from rich.console import Console

    from vaultside.client import VaultsideClient

T = TypeVar("T")

EXIT_ERROR = 1
EXIT_INVALID = 2  # same as click's usage errors
EXIT_DENIED = 3
EXIT_NOT_FOUND = 4
EXIT_CONFLICT = 5
EXIT_UNAVAILABLE = 6
EXIT_DEADLINE = 7  # retried until --timeout / VAULTSIDE_RETRY_TIMEOUT and still unavailable
EXIT_INTERRUPTED = 130
EXIT_SEALED_STATUS = EXIT_INVALID  # `operator seal-status` on a sealed server, as `vault status`

# The one description of every exit code (docs/cli.md is generated from it; a test checks
# that each EXIT_* constant of this module has a line).
EXIT_CODES: Final[dict[int, str]] = {
    0: "success",
    EXIT_ERROR: "failure not covered below (scan: findings at or above --fail-on; "
    "rotation rotate: the rotation failed and was rolled back; audit verify: chain broken)",
    EXIT_INVALID: "usage error or invalid input (bad option, file or configuration; HTTP 400/413);"
    " operator seal-status: the server is sealed (as `vault status`)",
    EXIT_DENIED: "permission denied (HTTP 403)",
    EXIT_NOT_FOUND: "not found (HTTP 404; scan: image not found)",
    EXIT_CONFLICT: "conflict (HTTP 409: check-and-set mismatch, rotation already running)",
    EXIT_UNAVAILABLE: "server or engine unreachable, or sealed (HTTP 503)",
    EXIT_DEADLINE: "server still unreachable, sealed or failing (5xx) when the retry deadline"
    " passed (VAULTSIDE_RETRY_TIMEOUT; sidecar: --timeout)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}

_EXIT_BY_CLASS: tuple[tuple[type[errors.VaultsideError], int], ...] = (
    (errors.InvalidRequestError, EXIT_INVALID),
    (errors.PayloadTooLargeError, EXIT_INVALID),
    (errors.PermissionDeniedError, EXIT_DENIED),
    (errors.NotFoundError, EXIT_NOT_FOUND),
    (errors.ConflictError, EXIT_CONFLICT),
    (errors.SealedError, EXIT_UNAVAILABLE),
    (errors.DeadlineExceededError, EXIT_DEADLINE),
    (errors.UpstreamUnavailableError, EXIT_UNAVAILABLE),
)


def exit_code_for(exc: errors.VaultsideError) -> int:
    """The process exit code for an error class (403, 404, 409, 503 and 400 are distinct)."""
    for cls, code in _EXIT_BY_CLASS:
        if isinstance(exc, cls):
            return code
    return EXIT_ERROR


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """Print ``Error: <message>`` on stderr (one line) and exit with ``code``."""
    one_line = " ".join(message.split())
    click.echo(f"Error: {one_line}", err=True)
    sys.exit(code)


def run_client(call: Callable[[VaultsideClient], Awaitable[T]], *, probe: bool = False) -> T:
    """Run ``call`` with a client built from the environment, behind the error boundary.

    The client retries an unreachable or sealed server for ``VAULTSIDE_RETRY_TIMEOUT``
    seconds (``vaultside.retry``); a ``probe`` (health checks) asks once and reports now.
    """

    # Imported here: commands that only render (scan, audit) need no HTTP client stack.
    import asyncio

    from vaultside.client import VaultsideClient
    from vaultside.retry import NO_RETRY

    async def main() -> T:
        kw: dict[str, Any] = {"retry": NO_RETRY} if probe else {}
        async with VaultsideClient.from_env(None, **kw) as client:
            return await call(client)

    try:
        return asyncio.run(main())
    except errors.VaultsideError as exc:
        fail("; ".join(exc.public_messages()) or exc.message, exit_code_for(exc))
    except KeyboardInterrupt:
        fail("interrupted", EXIT_INTERRUPTED)
    except Exception as exc:  # the boundary: no tracebacks for users
        fail(f"unexpected {type(exc).__name__}", EXIT_ERROR)


def console() -> Console:
    """A stdout console that does not wrap or colour output when it is not a terminal."""
    from rich.console import Console  # imported when used: ~45 ms of every start-up otherwise

    return Console(soft_wrap=True, highlight=False)


def print_json(obj: Any) -> None:
    """Machine output: stable, indented JSON on stdout."""
    click.echo(json.dumps(obj, indent=2, sort_keys=True, default=str))


def print_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str = "") -> None:
    """A rich table on a terminal; plain aligned text (no box drawing) in a pipe or file."""
    if not sys.stdout.isatty():
        click.echo(plain_table(columns, rows, title), nl=False)
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(title) if title else None, show_header=True, header_style="bold")
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows:
        # Text, not markup: a value like "[red]x" must print as is (and never raise).
        table.add_row(*(Text("" if v is None else str(v)) for v in row))
    console().print(table)


def print_mapping(data: Mapping[str, Any], title: str = "") -> None:
    """A two-column Key/Value table."""
    print_table(("Key", "Value"), ((k, _cell(v)) for k, v in data.items()), title)


def print_auth(auth: Any, field: str | None, as_json: bool, *, title: str) -> None:
    """A new token (``TokenAuth``): one field raw (``token``/``accessor``), JSON, or a table."""
    from dataclasses import asdict

    if field is not None:
        print_raw(auth.token if field == "token" else auth.accessor)
    elif as_json:
        print_json(asdict(auth))
    else:
        print_mapping(asdict(auth), title=title)


def print_raw(value: str) -> None:
    """Print a raw value: exactly as is, plus a newline only on a terminal."""
    out = sys.stdout
    out.write(value)
    if out.isatty() and not value.endswith("\n"):
        out.write("\n")
    out.flush()


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def plain_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str = "") -> str:
    """Columns separated by two spaces and padded to align; a title line first if given.

    Newlines and tabs inside cells are written as ``\\n`` and ``\\t`` so every row stays one line.
    """
    header = [str(c).upper() for c in columns]
    body = [[_plain_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in (header, *body) if i < len(r)) for i in range(len(header))]
    lines = [title] if title else []
    for row in (header, *body):
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[: len(widths)])]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def _plain_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("\n", "\\n").replace("\t", "\\t")


# ---- the one --format option ---------------------------------------------------------------

FORMAT_ENV: Final = "VAULTSIDE_FORMAT"
KNOWN_FORMATS: Final = ("table", "json", "sarif")
_FORMAT_META: Final = "vaultside.format"


def output_format(
    *formats: str, dest: str | None = "as_json", default: str = "table"
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add ``--format`` (choices ``formats``, default ``table``) and a hidden ``--json``.

    ``$VAULTSIDE_FORMAT`` is the default when ``--format`` is not given; a value this command
    does not offer (``sarif`` outside scans) falls back to ``default``, an unknown one is a usage
    error. The command receives the choice as ``dest``: ``as_json`` (a bool, for commands that
    branch on JSON) or any other name (the format's name, e.g. ``fmt``), or nothing with
    ``dest=None``; ``current_format()`` and ``render`` read it in any case.
    """
    choices = formats or ("table", "json")

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(f)
        def wrapper(*args: Any, output_format: str | None, json_alias: bool, **kw: Any) -> Any:
            fmt = _resolve_format(output_format, json_alias, choices, default)
            click.get_current_context().meta[_FORMAT_META] = fmt
            if dest == "as_json":
                kw[dest] = fmt == "json"
            elif dest is not None:
                kw[dest] = fmt
            return f(*args, **kw)

        wrapper = click.option(
            "--json",
            "json_alias",
            is_flag=True,
            hidden=True,
            help="Deprecated alias of --format json.",
        )(wrapper)
        wrapper = click.option(
            "--format",
            "output_format",
            type=click.Choice(choices),
            default=None,
            help=f"Output format (default: ${FORMAT_ENV}, else {default}).",
        )(wrapper)
        return wrapper

    return decorate


def _resolve_format(
    given: str | None, json_alias: bool, choices: Sequence[str], default: str
) -> str:
    if json_alias:
        if given not in (None, "json"):
            raise click.UsageError(f"--json contradicts --format {given}")
        if "json" in choices:
            return "json"
    if given is not None:
        return given
    env = os.environ.get(FORMAT_ENV, "").strip().lower()
    if not env:
        return default
    if env in choices:
        return env
    if env in KNOWN_FORMATS:
        return default
    # The value is not echoed (house rule: errors name the field, never the input).
    raise click.UsageError(f"{FORMAT_ENV} must be one of {', '.join(KNOWN_FORMATS)}")


def current_format() -> str:
    """The format chosen for the running command (``table`` outside ``output_format``)."""
    ctx = click.get_current_context(silent=True)
    while ctx is not None:
        if _FORMAT_META in ctx.meta:
            return str(ctx.meta[_FORMAT_META])
        ctx = ctx.parent
    return "table"


def render(data: Any, *, title: str = "", columns: Sequence[str] | None = None) -> None:
    """Print ``data`` in the current format: JSON, or a table shaped by its type.

    A mapping is a Key/Value table; a list of mappings a table with ``columns`` (default: the
    first item's keys); a list of scalars one per line; anything else as text.
    """
    if current_format() == "json":
        print_json(data)
    elif isinstance(data, Mapping):
        print_mapping(data, title)
    elif isinstance(data, list | tuple) and data and all(isinstance(d, Mapping) for d in data):
        cols = list(columns or data[0].keys())
        print_table(cols, ([_cell(d.get(c)) for c in cols] for d in data), title)
    elif isinstance(data, list | tuple):
        for item in data:
            click.echo(_cell(item))
    elif data is not None:
        click.echo(str(data))
