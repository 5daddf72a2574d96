"""Loading settings: --config / VAULTSIDE_CONFIG, unknown keys at every level, one-line errors
with file, line and column (exit 2), and durations wherever seconds are taken."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from pydantic import BaseModel, ValidationError

from vaultside.cli.main import cli
from vaultside.config.settings import Settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Run in an empty dir with no VAULTSIDE_* settings; restore VAULTSIDE_CONFIG afterwards."""
    import os

    for name in list(os.environ):
        if name.startswith("VAULTSIDE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("VAULTSIDE_CONFIG", "")  # --config writes it; monkeypatch restores it
    monkeypatch.chdir(tmp_path)


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    # ``operator init`` builds the settings first; with good settings it writes a key file.
    return CliRunner().invoke(cli, [*args, "operator", "init"], env=env)


def one_line_error(result: Result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_config_env_var_chooses_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "etc" / "custom.toml"
    conf.parent.mkdir()
    conf.write_text("[server]\nworkers = 3\n")
    monkeypatch.setenv("VAULTSIDE_CONFIG", str(conf))
    assert Settings().server.workers == 3


def test_config_flag_chooses_the_file(tmp_path: Path) -> None:
    conf = tmp_path / "etc" / "custom.toml"
    conf.parent.mkdir()
    conf.write_text(f'data_dir = "{tmp_path / "data"}"\n')
    result = run("--config", str(conf))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "data" / "vaultside.key").exists()


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    line = one_line_error(run("--config", str(tmp_path / "nope.toml")))
    assert "nope.toml" in line and "not found" in line


def test_unknown_keys_inside_sections_are_rejected_with_the_dotted_name(tmp_path: Path) -> None:
    (tmp_path / "vaultside.toml").write_text("[server]\nworkrs = 4\n[inject.admission]\nx = 1\n")
    with pytest.raises(ValidationError):
        Settings()
    line = one_line_error(run())
    assert "server.workrs: unknown setting" in line
    assert "inject.admission.x: unknown setting" in line


def test_unknown_env_keys_inside_sections_are_rejected() -> None:
    line = one_line_error(run(env={"VAULTSIDE_ROTATION__LEASE_TTLL": "5"}))
    assert "rotation.lease_ttll: unknown setting" in line


def test_every_settings_section_forbids_unknown_keys() -> None:
    def sections(model: type[BaseModel]) -> list[type[BaseModel]]:
        found = []
        for field in model.model_fields.values():
            for arg in (field.annotation, *getattr(field.annotation, "__args__", ())):
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    found += [arg, *sections(arg)]
        return found

    for section in sections(Settings):
        assert section.model_config.get("extra") == "forbid", section.__name__


def test_a_toml_syntax_error_is_one_line_with_file_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "vaultside.toml").write_text("[server]\nworkers = \n")
    line = one_line_error(run())
    assert f"{tmp_path / 'vaultside.toml'}:2:11: invalid TOML" in line


def test_bad_json_in_an_env_var_is_one_line_with_the_variable_line_and_column() -> None:
    env = {"VAULTSIDE_BROKERS__corp__KV_VERSIONS": '{"secret": '}
    line = one_line_error(run(env=env))
    assert "VAULTSIDE_BROKERS__corp__KV_VERSIONS: line 1, column 12: invalid JSON" in line


def test_errors_never_quote_a_configured_value(tmp_path: Path) -> None:
    password = secrets.token_urlsafe(16)
    (tmp_path / "vaultside.toml").write_text(
        f'[storage]\npostgres_dsnn = "postgresql://app:{password}@db/vs"\nkind = "{password}"\n'
    )
    line = one_line_error(run())
    assert "storage.postgres_dsnn: unknown setting" in line and "storage.kind" in line
    assert password not in line


def test_durations_are_accepted_wherever_seconds_are(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULTSIDE_AUTH__TOKEN_TIDY_INTERVAL", "1h30m")
    monkeypatch.setenv("VAULTSIDE_ROTATION__REDELIVER_INTERVAL", "0.5")
    settings = Settings(
        rotation={"lease_ttl": "10m"},  # type: ignore[arg-type]
        scan={"periodic_interval": "1d"},  # type: ignore[arg-type]
        brokers={"corp": {"address": "http://127.0.0.1:1", "cache_ttls": {"kv/*": "5m"}}},  # type: ignore[dict-item]
    )
    assert settings.auth.token_tidy_interval == 5400
    assert settings.rotation.lease_ttl == 600 and settings.rotation.redeliver_interval == 0.5
    assert settings.scan.periodic_interval == 86400
    assert settings.brokers["corp"].cache_ttls == {"kv/*": 300}


def test_duration_settings_keep_their_bounds() -> None:
    with pytest.raises(ValidationError, match=r"rotation\.lease_ttl"):
        Settings(rotation={"lease_ttl": "2h"})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"rotation\.lease_ttl"):
        Settings(rotation={"lease_ttl": "10 minutes"})  # type: ignore[arg-type]
