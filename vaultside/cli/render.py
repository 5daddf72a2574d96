"""Shared CLI output: rich tables, JSON for scripts, and the one error boundary.

Every command that talks to a server goes through ``run_client``: errors become ONE line on
stderr (``Error: <message>``) and an exit code by kind, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from vaultside import errors
from vaultside.client import VaultsideClient
from vaultside.retry import NO_RETRY

T = TypeVar("T")

EXIT_ERROR = 1
EXIT_INVALID = 2  # same as click's usage errors
EXIT_DENIED = 3
EXIT_NOT_FOUND = 4
EXIT_CONFLICT = 5
EXIT_UNAVAILABLE = 6
EXIT_DEADLINE = 7  # retried until --timeout / VAULTSIDE_RETRY_TIMEOUT and still unavailable

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

    async def main() -> T:
        kw: dict[str, Any] = {"retry": NO_RETRY} if probe else {}
        async with VaultsideClient.from_env(None, **kw) as client:
            return await call(client)

    try:
        return asyncio.run(main())
    except errors.VaultsideError as exc:
        fail("; ".join(exc.public_messages()) or exc.message, exit_code_for(exc))
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except Exception as exc:  # the boundary: no tracebacks for users
        fail(f"unexpected {type(exc).__name__}", EXIT_ERROR)


def console() -> Console:
    """A stdout console that does not wrap or colour output when it is not a terminal."""
    return Console(soft_wrap=True, highlight=False)


def print_json(obj: Any) -> None:
    """Machine output: stable, indented JSON on stdout."""
    click.echo(json.dumps(obj, indent=2, sort_keys=True, default=str))


def print_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str = "") -> None:
    """A rich table on stdout."""
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
