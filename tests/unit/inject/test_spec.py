"""Volume options: valid forms, and errors that name the option."""

from __future__ import annotations

import pytest

from vaultside.errors import InvalidRequestError
from vaultside.inject.spec import DEFAULT_MODE, DEFAULT_SIZE, parse_volume_options


def test_single_secret_defaults() -> None:
    spec = parse_volume_options({"secret.db_password": "kv:app/db#password"})
    (f,) = spec.files
    assert (f.name, f.format, f.refs) == ("db_password", "raw", ("kv:app/db#password",))
    assert (spec.mode, spec.size_bytes, spec.uid, spec.gid) == (
        DEFAULT_MODE,
        DEFAULT_SIZE,
        None,
        None,
    )


def test_env_json_template_and_owner() -> None:
    spec = parse_volume_options(
        {
            "secret.app.env": "DB_USER=kv:app/db#user;DB_PASSWORD=kv:app/db#password",
            "format.app.env": "env",
            "secret.cfg.json": "kv:app/api#token",
            "format.cfg.json": "json",
            "template.db.url": "pg://{{ kv:app/db#user }}:{{ kv:app/db#password|urlquote }}@h",
            "uid": "1000",
            "gid": "2000",
            "mode": "0440",
            "size": "64k",
        }
    )
    by_name = {f.name: f for f in spec.files}
    assert by_name["app.env"].entries == (
        ("DB_USER", "kv:app/db#user"),
        ("DB_PASSWORD", "kv:app/db#password"),
    )
    assert by_name["cfg.json"].entries == (("TOKEN", "kv:app/api#token"),)
    assert by_name["db.url"].format == "template"
    assert spec.refs == ("kv:app/db#user", "kv:app/db#password", "kv:app/api#token")
    assert (spec.uid, spec.gid, spec.mode, spec.size_bytes) == (1000, 2000, 0o440, 65536)


@pytest.mark.parametrize(
    ("opts", "named"),
    [
        ({"secret.x": "kv:app/db#password", "colour": "red"}, "'colour'"),
        ({"secret.x": "kv:app/../db#password"}, "'secret.x'"),
        ({"secret.x": "mysql:app/db#password"}, "'secret.x'"),
        ({"secret.x": "kv:app/db"}, "'secret.x'"),
        ({"secret.x": "kv:a#b", "mode": "0999"}, "'mode'"),
        ({"secret.x": "kv:a#b", "mode": "4755"}, "'mode'"),
        ({"secret.x": "kv:a#b", "mode": "0044"}, "'mode'"),
        ({"secret.x": "kv:a#b", "mode": "0777"}, "'mode'"),
        ({"secret.x": "kv:a#b", "mode": "0404"}, "'mode'"),
        ({"secret.x": "kv:a#b", "mode": "0500"}, "'mode'"),
        ({"secret.x": "kv:a#b", "mode": "rw"}, "'mode'"),
        ({"secret.x": "kv:a#b", "uid": "-1"}, "'uid'"),
        ({"secret.x": "kv:a#b", "size": "10g"}, "'size'"),
        ({"secret.x": "kv:a#b", "size": "1"}, "'size'"),
        ({"secret.../etc/passwd": "kv:a#b"}, "'secret.../etc/passwd'"),
        ({"secret..": "kv:a#b"}, "'secret..'"),
        ({"secret.a/b": "kv:a#b"}, "'secret.a/b'"),
        ({"secret..hidden": "kv:a#b"}, "'secret..hidden'"),
        ({"secret.": "kv:a#b"}, "'secret.'"),
        ({"secret.x": "kv:a#b", "format.x": "yaml"}, "'format.x'"),
        ({"secret.x": "kv:a#b", "format.y": "env"}, "'format.y'"),
        ({"secret.x": "A=kv:a#b;B=kv:a#c"}, "'secret.x'"),
        ({"secret.x": "1A=kv:a#b", "format.x": "env"}, "'secret.x'"),
        ({"template.x": "{{ kv:a#b | exec }}"}, "'template.x'"),
        ({"template.x": "{{ kv:a#b"}, "'template.x'"),
        ({"secret.x": "kv:a#b", "template.x": "{{ kv:a#b }}"}, "'secret.x'"),
    ],
)
def test_bad_options_name_the_option(opts: dict[str, str], named: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        parse_volume_options(opts)
    assert named in info.value.message


def test_no_secret_at_all() -> None:
    with pytest.raises(InvalidRequestError, match="no secret"):
        parse_volume_options({"mode": "0400"})
