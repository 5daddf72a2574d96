"""Volume options: which secrets go into which files, in what format, with which owner.

The same option keys serve the Docker volume plugin (``volume-opt`` / Compose ``driver_opts``)
and the sidecar's config. Every error names the option it is about and never shows a value.

Keys::

    secret.<file>=<ref>                       raw value of one reference (format raw)
    secret.<file>=<KEY>=<ref>;<KEY>=<ref>     several values, for format env or json
    template.<file>=<template text>           file built by the template language
    format.<file>=raw|env|json                how ``secret.<file>`` is written (default raw)
    uid=<n>  gid=<n>  mode=<octal, default 0400>  size=<n>[k|m] (tmpfs size, default 1m)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from vaultside.errors import InvalidRequestError
from vaultside.inject.template import Template, parse_template
from vaultside.refs import parse_ref

FileFormat = Literal["raw", "env", "json", "template"]
FORMATS: tuple[str, ...] = ("raw", "env", "json")
DEFAULT_MODE = 0o400
ALLOWED_MODE_BITS = 0o660
DEFAULT_SIZE = 1024 * 1024
MAX_SIZE = 64 * 1024 * 1024
MIN_SIZE = 4096
MAX_FILES = 64
_FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_ID_MAX = 2**31 - 1


@dataclass(frozen=True, slots=True)
class FileSpec:
    """One file to render: its name, format and the references it needs."""

    name: str
    format: FileFormat
    entries: tuple[tuple[str, str], ...] = ()
    template: Template | None = None

    @property
    def refs(self) -> tuple[str, ...]:
        """Normalised references this file needs."""
        if self.template is not None:
            return self.template.refs
        return tuple(dict.fromkeys(ref for _, ref in self.entries))

    @property
    def option(self) -> str:
        """The option key that defined this file (for error messages)."""
        return f"{'template' if self.format == 'template' else 'secret'}.{self.name}"


@dataclass(frozen=True, slots=True)
class VolumeSpec:
    """Everything a volume (or sidecar) delivers; holds references, never values."""

    files: tuple[FileSpec, ...]
    uid: int | None = None
    gid: int | None = None
    mode: int = DEFAULT_MODE
    size_bytes: int = DEFAULT_SIZE

    @property
    def refs(self) -> tuple[str, ...]:
        """Every reference of every file, without duplicates."""
        return tuple(dict.fromkeys(r for f in self.files for r in f.refs))

    def option_for(self, ref: str) -> str:
        """The first option key that uses ``ref``."""
        for f in self.files:
            if ref in f.refs:
                return f.option
        return "?"


def _bad(option: str, why: str) -> InvalidRequestError:
    return InvalidRequestError(f"volume option {option[:80]!r}: {why}")


def check_file_name(name: str, option: str) -> str:
    """Validate a file name before it touches a path: one segment, no traversal."""
    # SECURITY: names become paths under the mountpoint; allow only a single plain segment.
    if name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise _bad(option, "file name must be a single path segment (no '/', '.' or '..')")
    if not _FILE_NAME.match(name):
        raise _bad(
            option,
            "file name must be 1-128 characters of [A-Za-z0-9._-], not starting with '.' or '-'",
        )
    return name


def _parse_int(option: str, text: str, low: int, high: int) -> int:
    if not text.isdigit():
        raise _bad(option, "must be a non-negative integer")
    value = int(text)
    if not low <= value <= high:
        raise _bad(option, f"must be between {low} and {high}")
    return value


def parse_mode(option: str, text: str) -> int:
    """An octal file mode such as ``0400``; no setuid/setgid/sticky bits."""
    if not re.fullmatch(r"0?[0-7]{3}", text):
        raise _bad(option, "must be an octal mode like 0400 (no setuid/setgid/sticky bits)")
    mode = int(text, 8)
    if mode & 0o400 == 0:
        raise _bad(option, "must let the owner read (e.g. 0400)")
    # SECURITY: secret files are never executable nor readable by other users.
    if mode & ~ALLOWED_MODE_BITS:
        raise _bad(option, "must not grant execute or other-user access (at most 0660)")
    return mode


def parse_size(option: str, text: str) -> int:
    """A tmpfs size: bytes, or with a ``k``/``m`` suffix."""
    match = re.fullmatch(r"([0-9]{1,9})([kKmM]?)", text)
    if not match:
        raise _bad(option, "must be a size like 512k or 1m")
    mult = {"": 1, "k": 1024, "m": 1024 * 1024}[match.group(2).lower()]
    value = int(match.group(1)) * mult
    if not MIN_SIZE <= value <= MAX_SIZE:
        raise _bad(option, f"must be between {MIN_SIZE} bytes and {MAX_SIZE // 1024 // 1024}m")
    return value


def _parse_entries(option: str, text: str) -> tuple[tuple[str, str], ...]:
    if "=" not in text or text.strip().startswith(("kv:", "vault:")):
        return (("", _ref(option, text)),)
    entries: list[tuple[str, str]] = []
    for item in text.split(";"):
        key, eq, ref = item.strip().partition("=")
        if not eq or not _ENV_KEY.match(key):
            raise _bad(
                option, "expected <ref> or <KEY>=<ref>;<KEY>=<ref> with KEY [A-Za-z_][A-Za-z0-9_]*"
            )
        if key in dict(entries):
            raise _bad(option, f"key {key!r} given twice")
        entries.append((key, _ref(option, ref)))
    return tuple(entries)


def _ref(option: str, text: str) -> str:
    try:
        return str(parse_ref(text.strip()))
    except InvalidRequestError as exc:
        raise _bad(option, exc.message) from exc


def parse_volume_options(opts: Mapping[str, str]) -> VolumeSpec:
    """Validate options into a ``VolumeSpec``; ``InvalidRequestError`` naming the option."""
    secrets: dict[str, str] = {}
    templates: dict[str, str] = {}
    formats: dict[str, str] = {}
    uid = gid = None
    mode, size = DEFAULT_MODE, DEFAULT_SIZE
    for key, raw in opts.items():
        if not isinstance(raw, str):
            raise _bad(str(key), "value must be a string")
        kind, dot, name = key.partition(".")
        if dot and kind in ("secret", "template", "format"):
            check_file_name(name, key)
            {"secret": secrets, "template": templates, "format": formats}[kind][name] = raw
        elif key == "uid":
            uid = _parse_int(key, raw, 0, _ID_MAX)
        elif key == "gid":
            gid = _parse_int(key, raw, 0, _ID_MAX)
        elif key == "mode":
            mode = parse_mode(key, raw)
        elif key == "size":
            size = parse_size(key, raw)
        else:
            raise _bad(
                key,
                "unknown option; use secret.<file>, template.<file>, format.<file>, "
                "uid, gid, mode or size",
            )
    files: list[FileSpec] = []
    for name, text in secrets.items():
        option = f"secret.{name}"
        if name in templates:
            raise _bad(option, f"file {name!r} is also given as template.{name}")
        fmt = formats.get(name, "raw")
        if fmt not in FORMATS:
            raise _bad(f"format.{name}", f"must be one of {', '.join(FORMATS)}")
        entries = _parse_entries(option, text)
        if fmt == "raw" and len(entries) != 1:
            raise _bad(option, "format raw takes exactly one reference (use format env or json)")
        if fmt != "raw":
            entries = tuple((k or _default_key(ref), ref) for k, ref in entries)
        files.append(FileSpec(name, fmt, entries))  # type: ignore[arg-type]
    for name, text in templates.items():
        option = f"template.{name}"
        if name in formats:
            raise _bad(f"format.{name}", "a template file has no format option")
        try:
            tpl = parse_template(text)
        except InvalidRequestError as exc:
            raise _bad(option, exc.message) from exc
        files.append(FileSpec(name, "template", template=tpl))
    for name in formats:
        if name not in secrets and name not in templates:
            raise _bad(f"format.{name}", f"no secret.{name} option")
    if not files:
        raise InvalidRequestError("volume options name no secret: add secret.<file>=<ref>")
    if len(files) > MAX_FILES:
        raise InvalidRequestError(f"at most {MAX_FILES} files per volume")
    return VolumeSpec(tuple(files), uid, gid, mode, size)


def _default_key(ref: str) -> str:
    field = parse_ref(ref).field
    key = re.sub(r"[^A-Za-z0-9_]", "_", field).upper()
    return key if _ENV_KEY.match(key) else f"_{key}"
