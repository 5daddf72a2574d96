"""File formats."""

from __future__ import annotations

import json

from vaultside.inject.render import env_quote, render_volume
from vaultside.inject.spec import parse_volume_options


def test_formats() -> None:
    spec = parse_volume_options(
        {
            "secret.raw": "kv:app/db#password",
            "secret.app.env": "USER=kv:app/db#user;PASSWORD=kv:app/db#password",
            "format.app.env": "env",
            "secret.app.json": "USER=kv:app/db#user;PASSWORD=kv:app/db#password",
            "format.app.json": "json",
            "template.url": "u={{ kv:app/db#user }}",
        }
    )
    values = {"kv:app/db#user": "app", "kv:app/db#password": 'a"b $c\nd'}
    files = render_volume(spec, values)
    assert files["raw"] == b'a"b $c\nd'
    assert files["app.env"] == b'USER=app\nPASSWORD="a\\"b \\$c\\nd"\n'
    assert json.loads(files["app.json"]) == {"USER": "app", "PASSWORD": 'a"b $c\nd'}
    assert files["url"] == b"u=app"


def test_env_quote_plain_and_special() -> None:
    assert env_quote("abc-123_/.:@+,=%") == "abc-123_/.:@+,=%"
    assert env_quote("a b") == '"a b"'
    assert env_quote("`x`\\") == '"\\`x\\`\\\\"'
