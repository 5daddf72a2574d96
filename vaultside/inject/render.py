"""Turn resolved values into file contents (raw, env file, JSON, template)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from vaultside.errors import InvalidRequestError
from vaultside.inject.spec import FileSpec, VolumeSpec

_PLAIN_ENV = re.compile(r"^[A-Za-z0-9_./:@+,=%-]*$")


def env_quote(value: str) -> str:
    """A value as written in an env file: bare if plain, else double-quoted and escaped."""
    if _PLAIN_ENV.match(value):
        return value
    escaped = (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("$", "\\$")
        .replace("`", "\\`")
        .replace("\n", "\\n")
    )
    return f'"{escaped}"'


def render_file(spec: FileSpec, values: Mapping[str, str]) -> bytes:
    """The bytes of one file; ``values`` maps normalised references to values."""
    missing = [r for r in spec.refs if r not in values]
    if missing:
        raise InvalidRequestError(f"{spec.option}: reference {missing[0]} was not resolved")
    if spec.format == "template":
        assert spec.template is not None
        text = spec.template.render(values)
    elif spec.format == "raw":
        text = values[spec.entries[0][1]]
    elif spec.format == "env":
        text = "".join(f"{key}={env_quote(values[ref])}\n" for key, ref in spec.entries)
    else:
        text = json.dumps({key: values[ref] for key, ref in spec.entries}, indent=2) + "\n"
    return text.encode("utf-8")


def render_volume(spec: VolumeSpec, values: Mapping[str, str]) -> dict[str, bytes]:
    """Every file of a volume, by file name."""
    return {f.name: render_file(f, values) for f in spec.files}
