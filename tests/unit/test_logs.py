"""JSON and text log formatting."""

from __future__ import annotations

import json
import logging

import pytest

from vaultside.errors import InvalidRequestError
from vaultside.logs import JsonFormatter, TextFormatter, setup_logging


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
