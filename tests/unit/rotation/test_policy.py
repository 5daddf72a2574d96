"""Policy validation: every bad policy is a 400 naming the field; windows and durations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from vaultside.durations import parse_duration as parse_seconds
from vaultside.errors import InvalidRequestError
from vaultside.rotation.policy import Window, parse_policy


def base(**kw: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "every": "1d",
        "generator": {"kind": "password", "length": 24},
        "target": {"kind": "kv"},
    }
    doc.update(kw)
    return doc


def problems(doc: object) -> str:
    with pytest.raises(InvalidRequestError) as info:
        parse_policy(doc)
    return "\n".join(info.value.public_messages())


def test_valid_policy_round_trips() -> None:
    policy = parse_policy(base(jitter="10m", grace="1h", window={"start": "01:00", "end": "05:00"}))
    assert policy.every == 86400 and policy.jitter == 600 and policy.grace == 3600
    assert parse_policy(policy.to_json()) == policy


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        (base(every=None, cron="61 * * * *"), "cron: Value error, minute"),
        (base(every=None, cron="* * *"), "cron:"),
        (base(target={"kind": "ftp"}), "target:"),
        (base(target={"kind": "kv", "extra": 1}), "target.kv.extra: unknown field"),
        (base(every="soon"), "every:"),
        (base(every=5), "every:"),
        (base(cron="0 3 * * *"), "exactly one of 'every' or 'cron'"),
        (base(every=None), "exactly one of 'every' or 'cron'"),
        (base(window={"start": "25:00", "end": "01:00"}), "window.start"),
        (base(generator={"kind": "password", "length": 4}), "generator.password.length"),
        (
            base(generator={"kind": "password", "classes": ["digit"], "exclude": "0123456789"}),
            "generator.password: Value error, exclude removes every character of class 'digit'",
        ),
        (
            base(generator={"kind": "password", "classes": ["digit"], "required": ["symbol"]}),
            "generator.password: Value error, required classes",
        ),
        (
            base(
                generator={
                    "kind": "password",
                    "length": 8,
                    "classes": ["lower", "upper", "digit", "symbol"],
                    "exclude": "abcdefghijklmnopqrstuvwxyz",
                }
            ),
            "class 'lower'",
        ),
        (base(generator={"kind": "bytes", "encoding": "rot13"}), "generator.bytes.encoding"),
        (
            base(target={"kind": "postgres", "admin_dsn_ref": "nope", "roles": ["a"]}),
            "target.postgres.admin_dsn_ref",
        ),
        (
            base(
                target={
                    "kind": "postgres",
                    "admin_dsn_ref": "kv:pg#dsn",
                    "strategy": "alternating",
                    "roles": ["a"],
                }
            ),
            "target.postgres: Value error, strategy 'alternating' needs exactly 2",
        ),
        (
            base(target={"kind": "postgres", "admin_dsn_ref": "kv:pg#dsn", "roles": ['a"; drop']}),
            "target.postgres.roles.0",
        ),
        # The API never sets argv or URLs: a policy only names a declared target.
        (
            base(target={"kind": "command", "name": "x", "argv": ["/bin/sh"]}),
            "target.argv: not accepted through the API",
        ),
        (
            base(target={"kind": "webhook", "url": "http://127.0.0.1:1/"}),
            "target.url: not accepted through the API",
        ),
        (base(target={"kind": "webhook", "name": "h", "allow_http": True}), "target.allow_http"),
        (base(target={"kind": "command", "name": "x", "env": ["HOME"]}), "target.env"),
        (base(target={"kind": "command"}), "target.command.name: field required"),
        (base(target={"kind": "webhook", "name": "../x"}), "target.webhook.name"),
        (base(surprise=True), "surprise: unknown field"),
        ([], "must be a JSON object"),
    ],
)
def test_bad_policies_name_the_field(doc: object, field: str) -> None:
    assert field in problems(doc)


def test_messages_never_echo_values() -> None:
    text = problems(base(every="s3cr3t-looking-value"))
    assert "s3cr3t" not in text


def test_impossible_length_for_required_classes() -> None:
    gen = {"kind": "password", "length": 8, "classes": ["lower", "upper", "digit", "symbol"]}
    assert parse_policy(base(generator=gen)).generator.kind == "password"


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90.0), (90, 90.0), ("1h30m", 5400.0), ("2d", 172800.0), (0, 0.0)]
)
def test_parse_seconds(text: object, seconds: float) -> None:
    assert parse_seconds(text) == seconds


def at(h: int, m: int, day: int = 1) -> float:
    return datetime(2024, 1, day, h, m, tzinfo=UTC).timestamp()


def test_window_contains_and_next_open() -> None:
    w = Window(start="01:00", end="05:00")
    assert w.contains(at(1, 0)) and w.contains(at(4, 59)) and not w.contains(at(5, 0))
    assert w.next_open(at(3, 0)) == at(3, 0)
    assert w.next_open(at(6, 0)) == at(1, 0, day=2)
    assert w.next_open(at(0, 30)) == at(1, 0)
    wrap = Window(start="22:00", end="02:00")
    assert wrap.contains(at(23, 0)) and wrap.contains(at(1, 0)) and not wrap.contains(at(12, 0))
    assert wrap.next_open(at(12, 0)) == at(22, 0)
