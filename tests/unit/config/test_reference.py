"""docs/configuration.md lists every setting (add a row when you add a field)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from vaultside.config.settings import BrokerSettings, Settings

DOC = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"


def setting_names(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Dotted names of every leaf setting; ``brokers`` entries as ``brokers.<name>.x``."""
    names = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            names += setting_names(ann, f"{prefix}{name}.")
        elif model is Settings and name == "brokers":
            names += setting_names(BrokerSettings, "brokers.<name>.")
        else:
            names.append(prefix + name)
    return names


def test_every_setting_is_documented() -> None:
    text = DOC.read_text()
    names = setting_names(Settings)
    assert {"log_level", "inject.plugin_socket_dir", "inject.docker_data_root"} <= set(names)
    missing = [n for n in names if f"| `{n}` |" not in text]
    assert not missing, f"add these settings to {DOC.name}: {missing}"


def test_every_documented_setting_exists() -> None:
    reference = DOC.read_text().split("## Settings reference", 1)[1]
    rows = [line.split("`")[1] for line in reference.splitlines() if line.startswith("| `")]
    stale = sorted(set(rows) - set(setting_names(Settings)))
    assert not stale, f"{DOC.name} documents settings that do not exist: {stale}"
