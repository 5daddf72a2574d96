"""Image references, registry credentials and platforms: the pure half of the registry client.

- ``Reference.parse``: ``HOST[:PORT]/REPO[:TAG][@DIGEST]``; no host means Docker Hub.
- ``credentials_for``: ``VAULTSIDE_REGISTRY_USERNAME``/``VAULTSIDE_REGISTRY_PASSWORD``, else
  ``auths.<host>`` in ``$DOCKER_CONFIG/config.json`` (default ``~/.docker/config.json``).
- ``select_platform``: one manifest of an index (manifest list) by ``os/arch[/variant]``.

# SECURITY: ``Credentials`` never shows the password in a repr or an error message.

Errors: ``InvalidRequestError`` (bad reference, unreadable Docker config), ``NotFoundError``
(no manifest for the platform).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import platform as _platform
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vaultside.errors import InvalidRequestError, NotFoundError

DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}")
_DOCKER_HUB = "registry-1.docker.io"
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_REPO_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG_RE = re.compile(r"[\w][\w.-]{0,127}")
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


@dataclass(frozen=True)
class Reference:
    """``HOST[:PORT]/REPO[:TAG][@DIGEST]``; a name without a host means Docker Hub."""

    host: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def ref(self) -> str:
        """The tag or digest to fetch (digest wins)."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        out = f"{self.host}/{self.repository}"
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    @classmethod
    def parse(cls, text: str) -> Reference:
        """Parse an image reference; ``InvalidRequestError`` says what is wrong."""
        name, _, digest = text.strip().partition("@")
        if digest and not DIGEST_RE.fullmatch(digest):
            raise InvalidRequestError(f"bad digest in image reference {text[:200]!r}")
        tag: str | None = None
        slash, colon = name.rfind("/"), name.rfind(":")
        if colon > slash:
            name, tag = name[:colon], name[colon + 1 :]
            if not _TAG_RE.fullmatch(tag):
                raise InvalidRequestError(f"bad tag in image reference {text[:200]!r}")
        first, _, rest = name.partition("/")
        if rest and ("." in first or ":" in first or first == "localhost"):
            host, repo = first, rest
        else:
            host, repo = _DOCKER_HUB, name if rest else f"library/{name}"
        if host in ("docker.io", "index.docker.io"):
            host = _DOCKER_HUB
        if not _REPO_RE.fullmatch(repo):
            raise InvalidRequestError(f"bad repository in image reference {text[:200]!r}")
        return cls(host, repo, tag if tag or digest else "latest", digest or None)


@dataclass(frozen=True)
class Credentials:
    """A username and password (or token) for one registry, and where they came from."""

    username: str
    password: str = field(repr=False)  # SECURITY: never in reprs or messages
    origin: str = ""

    def basic(self) -> str:
        """The value of an ``Authorization: Basic`` header."""
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def _config_keys(host: str) -> list[str]:
    keys = [host, f"https://{host}", f"http://{host}", f"https://{host}/v1/", f"{host}/v1/"]
    if host == _DOCKER_HUB:
        keys += ["https://index.docker.io/v1/", "index.docker.io", "docker.io"]
    return keys


def credentials_for(
    host: str, env: Mapping[str, str] | None = None, home: Path | None = None
) -> Credentials | None:
    """Credentials for ``host`` from the environment, else the Docker CLI config file."""
    env = os.environ if env is None else env
    user, pw = env.get("VAULTSIDE_REGISTRY_USERNAME"), env.get("VAULTSIDE_REGISTRY_PASSWORD")
    if user and pw is not None:
        return Credentials(user, pw, "VAULTSIDE_REGISTRY_USERNAME/PASSWORD")
    conf_dir = env.get("DOCKER_CONFIG")
    path = (
        Path(conf_dir) / "config.json"
        if conf_dir
        else (home or Path.home()) / ".docker" / "config.json"
    )
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise InvalidRequestError(f"cannot read Docker config {path}: {exc}") from None
    auths = doc.get("auths") if isinstance(doc, dict) else None
    if not isinstance(auths, dict):
        return None
    for key in _config_keys(host):
        entry = auths.get(key)
        if not isinstance(entry, dict):
            continue
        if isinstance(entry.get("auth"), str) and entry["auth"]:
            try:
                raw = base64.b64decode(entry["auth"], validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise InvalidRequestError(f"{path}: auths.{key}.auth is not base64") from None
            u, sep, p = raw.partition(":")
            if not sep:
                raise InvalidRequestError(f"{path}: auths.{key}.auth is not user:password")
            return Credentials(u, p, f"{path} auths.{key}")
        if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
            return Credentials(entry["username"], entry["password"], f"{path} auths.{key}")
    return None


def host_platform() -> str:
    """``linux/<arch>`` of this machine, in OCI's arch names."""
    machine = _platform.machine().lower()
    if machine.startswith("armv7"):
        return "linux/arm/v7"
    return f"linux/{_ARCH.get(machine, machine)}"


def _platform_of(desc: Mapping[str, Any]) -> str:
    p = desc.get("platform") or {}
    out = f"{p.get('os', '?')}/{p.get('architecture', '?')}"
    return out + (f"/{p['variant']}" if p.get("variant") else "")


def select_platform(index: Mapping[str, Any], wanted: str) -> dict[str, Any]:
    """The descriptor in a manifest list / image index for ``wanted`` (``os/arch[/variant]``)."""
    descs = [d for d in index.get("manifests") or [] if isinstance(d, dict)]
    images = [d for d in descs if _platform_of(d) != "unknown/unknown"]  # not attestations
    for d in images:
        have = _platform_of(d)
        if have == wanted or (wanted.count("/") == 1 and have.rsplit("/", 1)[0] == wanted):
            return d
    # arm64 images usually carry variant v8; a request without a variant matches any variant
    if wanted.count("/") == 2 and wanted.endswith("/v8"):
        return select_platform(index, wanted.rsplit("/", 1)[0])
    have = ", ".join(sorted({_platform_of(d) for d in images})) or "none"
    raise NotFoundError(f"no image for platform {wanted} in the index (has: {have})")
