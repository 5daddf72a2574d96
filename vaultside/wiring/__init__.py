"""The composition root: turns ``Settings`` into objects. The only package that chooses
implementations; everything else receives what it needs in its constructor.

- ``server``: ``build_services`` (everything ``vaultside serve`` runs);
- ``storage``: storage kinds; ``seal``: seal kinds; ``audit``: audit sinks and keys;
- ``sources``: secret reference schemes; ``brokers``: Vault/OpenBao connections;
- ``rotation``: rotation targets and generators; ``scan``: scan sources and reporters.

Every extension point is a ``{kind: factory}`` registry (``vaultside.registry``).
"""

from __future__ import annotations

from vaultside.wiring.audit import audit_chain_id, audit_key_file, build_audit_sinks
from vaultside.wiring.rotation import build_target_catalog, target_factory
from vaultside.wiring.seal import build_seal, salt_file, seal_material
from vaultside.wiring.server import build_jwt, build_scans, build_services
from vaultside.wiring.storage import build_storage, postgres_dsn

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
