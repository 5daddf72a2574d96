"""JSON and text log formatting."""

from __future__ import annotations

import io
import json
import logging
import secrets

import pytest

from vaultside.errors import InvalidRequestError, UpstreamError
from vaultside.logs import JsonFormatter, TextFormatter, safe_message, setup_logging


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord(
        "vaultside.x", logging.WARNING, __file__, 1, "still %s", ("sealed",), None
    )
    for k, v in extra.items():
        setattr(record, k, v)
    return record


def test_json_lines_carry_event_and_extra_fields() -> None:
    line = JsonFormatter().format(_record(request_id="abc", attempts=3))
    obj = json.loads(line)
    assert obj["event"] == "still sealed"
    assert obj["level"] == "warning" and obj["logger"] == "vaultside.x"
    assert obj["request_id"] == "abc" and obj["attempts"] == 3
    assert obj["time"].endswith("Z")
    assert "\n" not in line


def test_text_lines_are_short() -> None:
    line = TextFormatter().format(_record(reason="no key"))
    assert "warning" in line and "still sealed" in line and "reason=no key" in line


def test_unknown_level_is_named() -> None:
    with pytest.raises(InvalidRequestError, match="LOUD"):
        setup_logging("LOUD")


def _log_exception(formatter: logging.Formatter, secret: str) -> str:
    """``log.exception`` for our error caused by a foreign one that quotes ``secret``."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    log = logging.getLogger(f"vaultside.test.{secrets.token_hex(4)}")
    log.addHandler(handler)
    log.propagate = False

    def talk_to_the_database() -> None:
        raise ValueError(f'syntax error at or near "{secret}"')  # a driver quoting its input

    try:
        try:
            talk_to_the_database()
        except ValueError as exc:
            raise UpstreamError("database refused the statement") from exc
    except UpstreamError:
        log.exception("rotation step crashed", extra={"path": "app/db"})
    return out.getvalue()


def test_json_log_exception_keeps_type_and_traceback_without_foreign_messages() -> None:
    secret = secrets.token_urlsafe(16)
    line = _log_exception(JsonFormatter(), secret).strip()
    obj = json.loads(line)
    assert obj["exc_type"] == "vaultside.errors.UpstreamError"
    assert obj["exc"] == "database refused the statement"
    assert "talk_to_the_database" in obj["traceback"]
    assert "ValueError: <withheld>" in obj["traceback"]
    assert "direct cause" in obj["traceback"] and obj["path"] == "app/db"
    assert secret not in line and "\n" not in line


def test_text_log_exception_prints_the_traceback() -> None:
    secret = secrets.token_urlsafe(16)
    text = _log_exception(TextFormatter(), secret)
    first, _, rest = text.partition("\n")
    assert "rotation step crashed" in first and "path=app/db" in first
    assert rest.startswith("Traceback (most recent call last):")
    assert "talk_to_the_database" in rest
    assert "vaultside.errors.UpstreamError: database refused the statement" in rest
    assert secret not in text


def test_os_errors_keep_their_errno_text_but_not_file_names() -> None:
    err = FileNotFoundError(2, "No such file or directory", "/secret/token-file")
    assert safe_message(err) == "[Errno 2] No such file or directory"
