"""``[auth.jwt]``: refused at start when it cannot be safe or complete."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from vaultside.config.settings import Settings
from vaultside.errors import InvalidRequestError
from vaultside.wiring.server import build_services

ISSUER = "https://kubernetes.default.svc.cluster.local"


@pytest.mark.parametrize(
    "jwt",
    [
        {"issuer": ISSUER},  # no key source
        {"issuer": ISSUER, "jwks_file": "k.json", "discovery": True},  # two
        {"issuer": ISSUER, "discovery": True, "algorithms": ["HS256"]},  # symmetric
        {"issuer": ISSUER, "discovery": True, "algorithms": ["none"]},
        {"issuer": ISSUER, "discovery": True, "algorithms": []},
        {"issuer": ISSUER, "discovery": True, "clock_skew": "10m"},  # > 300 s
        {"issuer": ISSUER, "discovery": True, "audiences": []},
        {"issuer": ISSUER, "discovery": True, "jwks_urll": "typo"},
    ],
)
def test_bad_settings_are_refused(jwt: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        Settings(data_dir=tmp_path, auth={"jwt": jwt})


@pytest.mark.parametrize(
    "jwt",
    [
        {"issuer": ISSUER, "jwks_url": "http://keys.example/jwks"},
        {"issuer": "http://kubernetes.example", "discovery": True},
    ],
)
def test_plain_http_to_a_remote_host_refuses_the_start(jwt: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match="https"):
        build_services(Settings(data_dir=tmp_path, auth={"jwt": jwt}))


def test_off_without_issuer_and_on_with_one(tmp_path: Path) -> None:
    assert build_services(Settings(data_dir=tmp_path / "a")).jwt is None
    on = Settings(data_dir=tmp_path / "b", auth={"jwt": {"issuer": ISSUER, "discovery": True}})
    jwt = build_services(on).jwt
    assert jwt is not None and jwt.issuer == ISSUER
