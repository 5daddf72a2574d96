"""Logging setup: JSON lines in production, short text lines in development.

Log records carry events and fields, never secret values or tokens: callers pass
identifiers (paths, accessors, request ids) in ``extra`` and this module renders them.

``log.exception()`` (and ``exc_info=``) keeps the exception type and traceback: JSON lines
carry ``exc_type``, ``exc`` and ``traceback`` fields, text lines print the traceback below.
SECURITY: a foreign exception's message may quote its input (a SQL statement with a password,
a DSN, a response body), so only vaultside's own messages (secret-free by design) and
``OSError``'s errno text are shown; any other message is replaced by ``<withheld>``. The
traceback is frames and source lines only, never local variables.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback
from types import TracebackType
from typing import Literal

from vaultside.errors import InvalidRequestError, VaultsideError

WITHHELD = "<withheld>"
_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"

# Attributes every LogRecord has; anything else was passed through ``extra=`` and is a field.
_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)


def _fields(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS}


def exception_type(exc: BaseException) -> str:
    """``module.QualName`` of ``exc``'s class (``ValueError`` for builtins)."""
    cls = type(exc)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def safe_message(exc: BaseException) -> str:
    """The message of ``exc`` if it cannot hold a secret, else ``<withheld>``."""
    if isinstance(exc, VaultsideError):
        return exc.message  # SECURITY: our messages never quote values, tokens or keys
    if isinstance(exc, OSError) and exc.strerror:
        return f"[Errno {exc.errno}] {exc.strerror}"  # no file names, no arguments
    return WITHHELD


def format_exception(exc: BaseException) -> str:
    """A traceback like Python's (the whole cause/context chain) with safe messages only."""
    chain: list[tuple[BaseException, str]] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    link = ""
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append((current, link))
        if current.__cause__ is not None:
            current, link = current.__cause__, _CAUSE
        elif current.__context__ is not None and not current.__suppress_context__:
            current, link = current.__context__, _CONTEXT
        else:
            current = None
    parts: list[str] = []
    for item, link in reversed(chain):
        if item.__traceback__ is not None:
            parts.append("Traceback (most recent call last):\n")
            parts.extend(traceback.format_tb(item.__traceback__))
        parts.append(f"{exception_type(item)}: {safe_message(item)}\n")
        parts.append(link)
    return "".join(parts).rstrip("\n")


def _exception(record: logging.LogRecord) -> BaseException | None:
    info = record.exc_info
    if not info or info[1] is None:
        return None
    exc: BaseException = info[1]
    tb: TracebackType | None = info[2]
    if exc.__traceback__ is None and tb is not None:
        exc = exc.with_traceback(tb)
    return exc


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event and the ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        out.update(_fields(record))
        exc = _exception(record)
        if exc is not None:
            out["exc_type"] = exception_type(exc)
            out["exc"] = safe_message(exc)
            out["traceback"] = format_exception(exc)
        return json.dumps(out, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """``HH:MM:SS level logger: event key=value ...`` for humans."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        fields = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        line = f"{stamp} {record.levelname.lower():7} {record.name}: {record.getMessage()}"
        if fields:
            line = f"{line} {fields}"
        exc = _exception(record)
        if exc is not None:
            line = f"{line}\n{format_exception(exc)}"
        return line


def setup_logging(level: str = "INFO", fmt: Literal["json", "text"] = "json") -> None:
    """Send every log record to stderr in ``fmt``; replaces previously installed handlers."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    if level.upper() not in logging.getLevelNamesMapping():
        raise InvalidRequestError(f"unknown log level {level!r} (use DEBUG, INFO, WARNING, ERROR)")
    root.setLevel(level.upper())
    # aiohttp's access log duplicates our audit trail and metrics; keep it quiet.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
