"""The composition root: turns ``Settings`` into objects. The only package that chooses
implementations; everything else receives what it needs in its constructor.

- ``server``: ``build_services`` (everything ``vaultside serve`` runs);
- ``storage``: storage kinds; ``seal``: seal kinds; ``audit``: audit sinks and keys;
- ``sources``: secret reference schemes; ``brokers``: Vault/OpenBao connections;
- ``rotation``: rotation targets and generators; ``scan``: scan sources and reporters.

Every extension point is a ``{kind: factory}`` registry (``vaultside.registry``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vaultside.wiring.audit import audit_chain_id, audit_key_file, build_audit_sinks
    from vaultside.wiring.rotation import build_target_catalog, target_factory
    from vaultside.wiring.seal import build_seal, salt_file, seal_material
    from vaultside.wiring.server import build_jwt, build_scans, build_services
    from vaultside.wiring.storage import build_storage, postgres_dsn

# Re-exports are imported on first use (PEP 562): ``vaultside scan`` imports
# ``vaultside.wiring.scan`` only, and importing every submodule here pulled the whole server
# stack (aiohttp, pydantic, every service: ~0.3 s) into each scan's start-up.
_EXPORTS = {
    "audit_chain_id": "audit",
    "audit_key_file": "audit",
    "build_audit_sinks": "audit",
    "build_target_catalog": "rotation",
    "target_factory": "rotation",
    "build_seal": "seal",
    "salt_file": "seal",
    "seal_material": "seal",
    "build_jwt": "server",
    "build_scans": "server",
    "build_services": "server",
    "build_storage": "storage",
    "postgres_dsn": "storage",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "audit_chain_id",
    "audit_key_file",
    "build_audit_sinks",
    "build_jwt",
    "build_scans",
    "build_seal",
    "build_services",
    "build_storage",
    "build_target_catalog",
    "postgres_dsn",
    "salt_file",
    "seal_material",
    "target_factory",
]
