"""``is_loopback``: the one test of "this host" for plain-http rules."""

from __future__ import annotations

import pytest

from vaultside.netloc import is_loopback


@pytest.mark.parametrize(
    ("host", "loop"),
    [
        ("127.0.0.1:5000", True),
        ("127.8.9.1", True),
        ("localhost:5000", True),
        ("[::1]:5000", True),
        ("10.0.0.1:5000", False),
        ("localhost.example.com", False),
        ("registry.example.com:443", False),
        ("::1", True),
        ("example", False),
    ],
)
def test_is_loopback(host: str, loop: bool) -> None:
    assert is_loopback(host) is loop
