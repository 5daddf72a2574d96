"""Rotation targets: one module per kind of credential holder.

``TargetFactory`` builds a policy's ``Target`` and ``Generator`` from registries keyed by the
spec's ``kind``; ``vaultside.wiring.rotation`` fills them (``TARGET_KINDS``,
``GENERATOR_KINDS``) and hands them in, so nothing in rotation chooses an implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vaultside.broker.base import SecretSource
from vaultside.clock import Clock
from vaultside.registry import lookup
from vaultside.rotation.base import Target
from vaultside.rotation.catalog import TargetCatalog
from vaultside.rotation.generators import Generator
from vaultside.rotation.policy import GeneratorSpec, TargetSpec

# (spec of that kind, the factory as context: clock, sources, catalog) → the target.
TargetBuilder = Callable[[Any, "TargetFactory"], Target]
# spec of that kind → its generator.
GeneratorBuilder = Callable[[Any], Generator]


@dataclass
class TargetFactory:
    """Builds the ``Target`` and ``Generator`` for a policy from the process's services."""

    clock: Clock
    # Reference scheme → source ("kv", "vault"); the broker registry is ``sources["vault"]``.
    sources: dict[str, SecretSource] = field(default_factory=dict)
    # The operator's declared command/webhook targets; a policy refers to one by name.
    catalog: TargetCatalog = field(default_factory=TargetCatalog)
    # Target kind → builder (``vaultside.wiring.rotation.TARGET_KINDS``).
    kinds: Mapping[str, TargetBuilder] = field(default_factory=dict)
    # Generator kind → builder (``vaultside.wiring.rotation.GENERATOR_KINDS``).
    generators: Mapping[str, GeneratorBuilder] = field(default_factory=dict)

    def build(self, spec: TargetSpec) -> Target:
        """The target for ``spec``; ``InvalidRequestError`` if it cannot be served here."""
        return lookup(self.kinds, spec.kind, "target.kind")(spec, self)

    def generator(self, spec: GeneratorSpec) -> Generator:
        """The generator for a validated spec."""
        return lookup(self.generators, spec.kind, "generator.kind")(spec)
