"""Logging setup: JSON lines in production, short text lines in development.

Log records carry events and fields, never secret values or tokens: callers pass
identifiers (paths, accessors, request ids) in ``extra`` and this module renders them.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Literal

from vaultside.errors import InvalidRequestError

# Attributes every LogRecord has; anything else was passed through ``extra=`` and is a field.
_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)


def _fields(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS}


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
        if record.exc_text:
            out["traceback"] = record.exc_text
        return json.dumps(out, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """``HH:MM:SS level logger: event key=value ...`` for humans."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        fields = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        line = f"{stamp} {record.levelname.lower():7} {record.name}: {record.getMessage()}"
        if fields:
            line = f"{line} {fields}"
        if record.exc_text:
            line = f"{line}\n{record.exc_text}"
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
