"""``vaultside.wiring.sidecar``: the one place the sidecar is built from its options."""

from __future__ import annotations

from pathlib import Path

import pytest

from vaultside.errors import InvalidRequestError
from vaultside.inject.sidecar_process import SidecarProcess
from vaultside.inject.signal import RunCommand, SignalProcess
from vaultside.wiring.sidecar import SidecarOptions, build_reload, build_sidecar, client_env


def _opts(tmp_path: Path, **kw: object) -> SidecarOptions:
    return SidecarOptions(
        output_dir=tmp_path,
        options={"secret.db": "kv:app/db#password"},
        **kw,  # type: ignore[arg-type]
    )


def test_token_file_and_addr_replace_the_environment(tmp_path: Path) -> None:
    env = {"VAULTSIDE_ADDR": "http://a", "VAULTSIDE_TOKEN": "t"}
    got = client_env(_opts(tmp_path, addr="http://b", token_file=tmp_path / "tok"), env)
    assert got["VAULTSIDE_ADDR"] == "http://b" and "VAULTSIDE_TOKEN" not in got
    assert got["VAULTSIDE_TOKEN_FILE"] == str(tmp_path / "tok")
    jwt = client_env(
        _opts(tmp_path, auth="jwt", jwt_role="web"), {**env, "VAULTSIDE_TOKEN_FILE": "f"}
    )
    assert "VAULTSIDE_TOKEN" not in jwt and "VAULTSIDE_TOKEN_FILE" not in jwt


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"auth": "basic"}, "auth must be token or jwt"),
        ({"auth": "jwt"}, "--auth jwt needs --role"),
        ({"auth": "jwt", "jwt_role": "web", "token_file": Path("t")}, "exclude each other"),
        ({"reload_pid": 1, "reload_command": "true"}, "at most one reload target"),
    ],
)
def test_options_that_do_not_fit_together_are_refused(
    tmp_path: Path, kw: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        build_sidecar(_opts(tmp_path, **kw), {"VAULTSIDE_ADDR": "http://127.0.0.1:9"})


def test_reload_actions(tmp_path: Path) -> None:
    assert build_reload(_opts(tmp_path), None) is None
    assert isinstance(build_reload(_opts(tmp_path, reload_pid=1), None), SignalProcess)
    command = build_reload(_opts(tmp_path, reload_command="kill -HUP 1"), None)
    assert isinstance(command, RunCommand)


async def test_the_process_holds_the_probe_only_when_it_keeps_running(tmp_path: Path) -> None:
    env = {"VAULTSIDE_ADDR": "http://127.0.0.1:9", "VAULTSIDE_TOKEN": "x"}
    once = build_sidecar(_opts(tmp_path, once=True, ready_http=("127.0.0.1", 0)), env)
    assert isinstance(once, SidecarProcess) and once.probe is None
    kept = build_sidecar(_opts(tmp_path, ready_http=("127.0.0.1", 0), consumer="c1"), env)
    assert kept.probe is not None and kept.sidecar.config.spec.files
    await once.close()
    await kept.close()
    await kept.close()  # idempotent
