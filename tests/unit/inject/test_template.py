"""The safe template language."""

from __future__ import annotations

import pytest

from vaultside.errors import InvalidRequestError
from vaultside.inject.template import parse_template

VALUES = {"kv:app/db#user": "app", "kv:app/db#password": "p@ss:w/rd "}


def test_render_with_filters() -> None:
    tpl = parse_template(
        "postgres://{{ kv:app/db#user }}:{{kv:app/db#password|urlquote}}@db:5432/app"
    )
    assert tpl.refs == ("kv:app/db#user", "kv:app/db#password")
    assert tpl.render(VALUES) == "postgres://app:p%40ss%3Aw%2Frd%20@db:5432/app"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ kv:app/db#password | trim | upper }}", "P@SS:W/RD"),
        ("{{ kv:app/db#password | json }}", '"p@ss:w/rd "'),
        ("{{ kv:app/db#user | base64 }}", "YXBw"),
        ("x={{ kv:app/db#password | shellquote }}", "x='p@ss:w/rd '"),
        ("no expressions", "no expressions"),
    ],
)
def test_filters(text: str, expected: str) -> None:
    assert parse_template(text).render(VALUES) == expected


@pytest.mark.parametrize(
    "text",
    [
        "{{ __import__('os').system('id') }}",
        "{{ open('/etc/passwd') }}",
        "{{ kv:app/db#user | __class__ }}",
        "{{ kv:app/db#user.__class__ }}x}}",
        "{{ }}",
        "{{ kv:app/db#user",
        "a }} b",
        "{{ {{ kv:a#b }} }}",
    ],
)
def test_refuses_anything_but_refs_and_known_filters(text: str) -> None:
    with pytest.raises(InvalidRequestError):
        parse_template(text)


def test_statement_syntax_is_plain_text() -> None:
    tpl = parse_template("{% for x in y %}{{ kv:a#b }}{% endfor %}")
    assert tpl.render({"kv:a#b": "v"}) == "{% for x in y %}v{% endfor %}"


def test_normalises_refs() -> None:
    assert parse_template("{{ kv:app/db#user@2 }}").refs == ("kv:app/db#user@2",)
