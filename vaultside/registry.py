"""``{kind: factory}`` registries: how an implementation is chosen by name.

``vaultside.wiring`` fills them. Each extension point is a plain module-level ``dict`` in its
wiring module (``STORAGE_KINDS``, ``SEAL_KINDS``, ``SOURCE_KINDS``, ``TARGET_KINDS``,
``GENERATOR_KINDS``, ``SCAN_SOURCES``, ``SCAN_REPORTERS``). A new implementation is one module
plus one ``register`` line (or one dict entry). ``lookup`` is the only way a kind is resolved,
so an unknown kind always fails the same way: ``InvalidRequestError`` naming it and listing
the known ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from vaultside.errors import InvalidRequestError

F = TypeVar("F")


def lookup(registry: Mapping[str, F], kind: str, what: str) -> F:
    """The factory registered as ``kind``; ``InvalidRequestError`` naming ``what`` otherwise."""
    try:
        return registry[kind]
    except KeyError:
        known = ", ".join(sorted(registry)) or "none"
        raise InvalidRequestError(f"{what} {kind!r} is not available (known: {known})") from None


def register(registry: dict[str, F], kind: str, factory: F, *, replace: bool = False) -> None:
    """Add ``factory`` as ``kind``; refuses to shadow an existing kind unless ``replace``."""
    if kind in registry and not replace:
        raise InvalidRequestError(f"kind {kind!r} is already registered")
    registry[kind] = factory
