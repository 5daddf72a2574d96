"""The CLI's one way to build ``Settings``: a bad configuration is one ``Error:`` line, exit 2."""

from __future__ import annotations

from collections.abc import Mapping

from vaultside.cli.render import EXIT_INVALID, fail
from vaultside.config.loader import ConfigError, load_settings
from vaultside.config.settings import Settings


def settings_or_exit(overrides: Mapping[str, object] | None = None) -> Settings:
    """``Settings`` from flags, env and the config file; exits 2 with one line if invalid."""
    try:
        return load_settings(overrides)
    except ConfigError as exc:
        fail(exc.message, EXIT_INVALID)
