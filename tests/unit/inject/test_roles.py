"""Roles file: label binding, image binding, allow globs."""

from __future__ import annotations

from pathlib import Path

import pytest

from vaultside.errors import InvalidRequestError, PermissionDeniedError
from vaultside.inject.roles import glob_to_regex, load_roles

from .conftest import safe_container

ROLES = """
[roles.web]
images = ["vaultside-test/busybox"]
token_file = "web.token"
allow = ["kv:app/web/**", "kv:app/db#password"]

[roles.batch]
labels = { "team" = "data", "tier" = "batch" }
"""


@pytest.fixture
def book(tmp_path: Path):
    path = tmp_path / "roles.toml"
    path.write_text(ROLES)
    return load_roles(path)


def test_label_binding_and_token_file(book, tmp_path: Path) -> None:
    role = book.role_for(safe_container())
    assert role.name == "web" and role.token_file == tmp_path / "web.token"
    other = book.role_for(safe_container(labels={"team": "data", "tier": "batch"}))
    assert other.name == "batch"


def test_no_role_and_unknown_role(book) -> None:
    with pytest.raises(PermissionDeniedError, match=r"has no io\.vaultside\.role label"):
        book.role_for(safe_container(labels={}))
    with pytest.raises(PermissionDeniedError, match="no vaultside role matches"):
        book.role_for(safe_container(labels={"io.vaultside.role": "admin"}))


def test_image_binding(book) -> None:
    with pytest.raises(PermissionDeniedError, match="not bound to image"):
        book.role_for(safe_container(image="other/image:1"))


def test_allow_globs(book) -> None:
    role = book.role_for(safe_container())
    role.check_refs([("secret.a", "kv:app/web/deep/x#k"), ("secret.b", "kv:app/db#password")])
    with pytest.raises(PermissionDeniedError) as info:
        role.check_refs([("secret.c", "kv:app/db#user")])
    assert "secret.c" in info.value.message and "kv:app/db#user" in info.value.message


def test_glob_semantics() -> None:
    assert glob_to_regex("kv:app/*").match("kv:app/db#password")
    assert not glob_to_regex("kv:app/*").match("kv:app/x/db#password")
    assert glob_to_regex("kv:app/**").match("kv:app/x/db#password")
    assert not glob_to_regex("kv:app.db#*").match("kv:appXdb#a")


@pytest.mark.parametrize(
    "text",
    [
        "[roles.web]\nlabel = {}\n",
        "[roles.web]\nimages = 'x'\n",
        "[roles.'bad name']\n",
        "[other]\n",
        "[roles.web\n",
    ],
)
def test_bad_roles_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "roles.toml"
    path.write_text(text)
    with pytest.raises(InvalidRequestError):
        load_roles(path)
