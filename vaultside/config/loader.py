"""Build ``Settings`` once, turning every way the configuration can be wrong into one line.

``load_settings`` raises ``ConfigError`` (an ``InvalidRequestError``: the CLI exits 2) whose
message is a single line naming where the problem is:

- the TOML file cannot be read or parsed: ``<file>:<line>:<column>: <what>``;
- an env var holds bad JSON: ``VAULTSIDE_X: line L, column C: <what>``;
- a value or key is wrong: ``invalid settings: server.workrs: unknown setting; ...``.

SECURITY: no message ever quotes a configured value (a mistyped key may hold a DSN or a
token): the TOML and JSON parsers' messages carry positions only, and pydantic errors are
rendered from their location and message, without ``input``.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping

from pydantic import ValidationError
from pydantic_settings import SettingsError

from vaultside.config.settings import CONFIG_ENV, Settings, config_file
from vaultside.errors import InvalidRequestError

_TOML_POS = re.compile(r"^(?P<what>.*?)\s*\(at line (?P<line>\d+), column (?P<col>\d+)\)$")
_FIELD = re.compile(r'field "(?P<field>[^"]+)"')
_MAX_PROBLEMS = 10


class ConfigError(InvalidRequestError):
    """The configuration (file, env vars or flags) is invalid; ``message`` is one line."""


def load_settings(overrides: Mapping[str, object] | None = None) -> Settings:
    """``Settings`` from flags (``overrides``), env and the TOML file; ``ConfigError`` if bad."""
    path = config_file()
    if os.environ.get(CONFIG_ENV) and not path.is_file():
        raise ConfigError(f"{path}: config file not found ({CONFIG_ENV} / --config)")
    try:
        return Settings(**dict(overrides or {}))  # type: ignore[arg-type]
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_toml_message(str(path.absolute()), exc)) from None
    except SettingsError as exc:
        raise ConfigError(_env_message(exc)) from None
    except ValidationError as exc:
        raise ConfigError(describe_validation(exc)) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or type(exc).__name__}") from None


def _toml_message(path: str, exc: tomllib.TOMLDecodeError) -> str:
    text = str(exc).splitlines()[0] if str(exc) else "invalid TOML"
    match = _TOML_POS.match(text)
    if match is None:  # "(at end of document)" and the like
        return f"{path}: invalid TOML: {text}"
    return f"{path}:{match['line']}:{match['col']}: invalid TOML: {match['what']}"


def _env_message(exc: SettingsError) -> str:
    cause = exc.__cause__
    found = _FIELD.search(str(exc))
    field = found["field"] if found else ""
    prefix = f"VAULTSIDE_{field}".upper()
    for name, value in sorted(os.environ.items()):
        if not name.upper().startswith(prefix):
            continue
        try:
            json.loads(value)
        except json.JSONDecodeError as err:
            if value.lstrip()[:1] in ("{", "["):
                # SECURITY: ``err.msg`` says what was expected, never the text itself.
                return f"{name}: line {err.lineno}, column {err.colno}: invalid JSON: {err.msg}"
    if isinstance(cause, json.JSONDecodeError):
        where = f"line {cause.lineno}, column {cause.colno}"
        return f"{prefix}: {where}: invalid JSON: {cause.msg}"
    return f"{prefix}: cannot parse the value"


def describe_validation(exc: ValidationError) -> str:
    """``invalid settings: a.b: msg; c: unknown setting`` (locations and messages, no input)."""
    problems = []
    for err in exc.errors(include_input=False, include_url=False)[:_MAX_PROBLEMS]:
        loc = ".".join(str(p) for p in err["loc"]) or "settings"
        if err["type"] == "extra_forbidden":
            problems.append(f"{loc}: unknown setting")
        else:
            problems.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - len(problems)
    if more > 0:
        problems.append(f"and {more} more")
    return "invalid settings: " + "; ".join(problems)
