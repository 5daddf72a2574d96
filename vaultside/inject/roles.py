"""Roles: which container may receive which secrets.

A roles file (TOML) binds roles to container labels and optionally to images; each role names
the vaultside token the plugin resolves that role's secrets with (so the server's policy has the
final say) and, optionally, local ``allow`` globs over references checked before asking::

    [roles.web]
    labels = { "io.vaultside.role" = "web" }  # default: io.vaultside.role = <role name>
    images = ["vaultside-test/busybox:latest", "sha256:..."]   # optional
    token_file = "/etc/vaultside/tokens/web"
    allow = ["kv:app/web/**", "kv:app/db#password"]           # optional
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vaultside.errors import InvalidRequestError, PermissionDeniedError
from vaultside.inject.admission import ContainerFacts, image_matches
from vaultside.inject.labels import ROLE, canonical_labels

ROLE_LABEL = ROLE
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def glob_to_regex(glob: str) -> re.Pattern[str]:
    """``**`` matches across ``/``, ``*`` within one segment; everything else is literal."""
    out = []
    for i, part in enumerate(glob.split("**")):
        if i:
            out.append(".*")
        out.append("[^/]*".join(re.escape(p) for p in part.split("*")))
    return re.compile("^" + "".join(out) + "$")


@dataclass(frozen=True, slots=True)
class Role:
    """One role: how containers are matched, and what they may receive."""

    name: str
    labels: Mapping[str, str]
    images: tuple[str, ...] = ()
    token_file: Path | None = None
    allow: tuple[str, ...] = ()
    _allow_re: tuple[re.Pattern[str], ...] = field(default=(), repr=False, compare=False)

    def matches(self, facts: ContainerFacts) -> bool:
        """True if every label of the role is on the container with the same value."""
        return all(facts.labels.get(k) == v for k, v in self.labels.items())

    def check_refs(self, refs: Iterable[tuple[str, str]]) -> None:
        """``PermissionDeniedError`` for the first (option, ref) outside ``allow``."""
        if not self.allow:
            return
        for option, ref in refs:
            if not any(p.match(ref) for p in self._allow_re):
                raise PermissionDeniedError(
                    f"role {self.name!r} may not receive {ref} ({option}): not in its allow list"
                )


class RoleBook:
    """All roles; finds the one role a container is bound to."""

    def __init__(self, roles: Iterable[Role]) -> None:
        self.roles = tuple(roles)

    def role_for(self, facts: ContainerFacts) -> Role:
        """The container's role; ``PermissionDeniedError`` with a clear reason otherwise."""
        matched = [r for r in self.roles if r.matches(facts)]
        if not matched:
            label = facts.labels.get(ROLE_LABEL)
            if label is None:
                raise PermissionDeniedError(
                    f"container {facts.name or facts.id[:12]} has no {ROLE_LABEL} label "
                    "bound to a vaultside role"
                )
            raise PermissionDeniedError(f"no vaultside role matches {ROLE_LABEL}={label[:64]!r}")
        if len(matched) > 1:
            names = ", ".join(r.name for r in matched)
            raise PermissionDeniedError(f"container matches several roles ({names}); refusing")
        role = matched[0]
        if role.images and not image_matches(facts, role.images):
            raise PermissionDeniedError(
                f"role {role.name!r} is not bound to image {facts.image[:120]!r}"
            )
        return role


def _role_from(name: str, obj: Mapping[str, Any], base: Path) -> Role:
    where = f"roles.{name}"
    if not _NAME.match(name):
        raise InvalidRequestError(f"{where}: role names are [A-Za-z0-9_.-]{{1,64}}")
    unknown = set(obj) - {"labels", "images", "token_file", "allow"}
    if unknown:
        raise InvalidRequestError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    labels = obj.get("labels", {ROLE_LABEL: name})
    if (
        not isinstance(labels, dict)
        or not labels
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items())
    ):
        raise InvalidRequestError(f"{where}.labels: a non-empty table of strings")
    images = obj.get("images", [])
    allow = obj.get("allow", [])
    for key, value in (("images", images), ("allow", allow)):
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            raise InvalidRequestError(f"{where}.{key}: a list of strings")
    token_file = obj.get("token_file")
    if token_file is not None and not isinstance(token_file, str):
        raise InvalidRequestError(f"{where}.token_file: a path")
    token_path = None if token_file is None else base / token_file
    return Role(
        name,
        canonical_labels(labels, owner=f"{base}:{where}"),
        tuple(images),
        token_path,
        tuple(allow),
        tuple(glob_to_regex(g) for g in allow),
    )


def load_roles(path: Path) -> RoleBook:
    """Read a roles TOML file; ``InvalidRequestError`` naming the bad key."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidRequestError(f"cannot read roles file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InvalidRequestError(f"roles file {path}: {exc}") from exc
    roles = data.get("roles", {})
    if set(data) - {"roles"} or not isinstance(roles, dict):
        raise InvalidRequestError(f"roles file {path}: only [roles.<name>] tables are allowed")
    return RoleBook(_role_from(n, r, path.parent) for n, r in roles.items())


def make_role(
    name: str,
    *,
    labels: Mapping[str, str] | None = None,
    images: tuple[str, ...] = (),
    token_file: Path | None = None,
    allow: tuple[str, ...] = (),
) -> Role:
    """Build a role in code (tests, single-role setups)."""
    return Role(
        name,
        canonical_labels(labels or {ROLE_LABEL: name}, owner=f"role:{name}"),
        images,
        token_file,
        allow,
        tuple(glob_to_regex(g) for g in allow),
    )
