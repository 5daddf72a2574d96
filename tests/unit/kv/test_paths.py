"""Secret path and prefix rules: a table of good and bad inputs."""

from __future__ import annotations

import pytest

from vaultside.errors import InvalidRequestError
from vaultside.kv.paths import validate_path, validate_prefix

GOOD = [
    "a",
    "app/db",
    "A-Z_0.9/x",
    "...",
    ".hidden/x",
    "a..b",
    "x" * 128,
    "/".join(["s"] * 32),
    "/".join(["y" * 127] * 4),  # 511 characters
]

BAD = [
    ("", "empty"),
    ("/app", "start with '/'"),
    ("app/", "end with '/'"),
    ("app//db", "empty segment"),
    (".", "'.'"),
    ("app/../etc", "'..'"),
    ("app/./x", "'.'"),
    ("x" * 129, "longer than 128"),
    ("/".join(["s"] * 33), "more than 32 segments"),
    ("/".join(["y" * 128] * 4) + "/z", "longer than 512"),
    ("app:metadata", "outside"),
    ("app db", "outside"),
    ("app/d\u00e9", "outside"),
    ("app\\db", "outside"),
    ("app/\x00", "control"),
    ("app\n", "control"),
    ("a\x7fb", "control"),
    ("a*", "outside"),
    ("a%2F..", "outside"),
]


@pytest.mark.parametrize("path", GOOD)
def test_good_paths(path: str) -> None:
    assert validate_path(path) == path


@pytest.mark.parametrize(("path", "problem"), BAD)
def test_bad_paths(path: str, problem: str) -> None:
    with pytest.raises(InvalidRequestError, match=problem.replace("*", r"\*")):
        validate_path(path)


def test_non_string_path() -> None:
    with pytest.raises(InvalidRequestError):
        validate_path(3)  # type: ignore[arg-type]


@pytest.mark.parametrize("prefix", ["", "app", "app/", "app/db/", "a.b/c-d_e/"])
def test_good_prefixes(prefix: str) -> None:
    assert validate_prefix(prefix) == prefix


@pytest.mark.parametrize("prefix", ["/", "/app", "app//", "app//x/", "../", "a b/", "a/./"])
def test_bad_prefixes(prefix: str) -> None:
    with pytest.raises(InvalidRequestError):
        validate_prefix(prefix)
