"""The storage key space: which service owns which prefix of the barrier. The one table.

Every service gets a ``StorageView`` of the barrier at its prefix (``view(barrier, owner)``)
and spells only its own layout below it; no other module spells these prefixes. A view passes
the full key to the barrier, so stored keys and the AEAD AAD are what they always were: the
prefixes here must never change (existing data dirs would stop reading).

Prefixes may nest: ``auth/`` belongs to the token store, which uses ``token/``, ``accessor/``,
``children/`` and the lease ``token-tidy`` below it; ``auth/policy/`` and ``auth/jwt/role/``
are carved out of it for their own owners. Change notices are routed to the owner of the
longest matching prefix (``vaultside.cluster.invalidation``). Lease names are confined the
same way (``try_lock("scheduler")`` on the ``rotation/`` view is the lease ``rotation/scheduler``).

The barrier itself owns what lies outside ``logical/`` below it (``core/keyring``,
``core/rewrap``): that layout is ``vaultside.crypto.barrier``'s. The one lease outside the
views is ``sys/rewrap`` (``api/routes/sys.py``), taken on the storage below the barrier by
whoever runs the barrier's rewrap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Literal

from vaultside.auth.policy import PolicyStore
from vaultside.auth.tokens import TokenStore
from vaultside.cluster.invalidation import CacheInvalidator
from vaultside.crypto.barrier import Barrier
from vaultside.crypto.keyring import KEYRING_KEY
from vaultside.storage.base import StorageBackend
from vaultside.storage.view import StorageView

if TYPE_CHECKING:
    from vaultside.storage.notify import ChangeFeed  # asyncpg: only with PostgreSQL

Owner = Literal[
    "kv",
    "tokens",
    "policies",
    "jwt_roles",
    "rotation",
    "scan",
    "audit",
    "brokers",
    "leaders",
    "sys",
]

#: owner -> prefix, and what the owner keeps below it.
PREFIXES: Final[dict[Owner, str]] = {
    # kv/record.py: meta/<path>, data/<path>/<version>
    "kv": "kv/",
    # auth/tokens.py: token/<sha256>, accessor/<accessor>, children/<parent>/<child>;
    # auth/tidy.py: the lease token-tidy
    "tokens": "auth/",
    # auth/policy.py: <policy name>
    "policies": "auth/policy/",
    # auth/jwt_auth.py: <role name>
    "jwt_roles": "auth/jwt/role/",
    # rotation/state.py: policy/, state/, history/, grace/, generation; rotation/propagate.py:
    # consumers/; rotation/journal.py: journal/; leases scheduler and lock/<path>
    "rotation": "rotation/",
    # scan/periodic.py: results/<id>; the lease periodic
    "scan": "scan/",
    # audit/anchor.py: chain-key, anchor/<sha256 of the chain id>
    "audit": "audit/",
    # broker/lease_store.py: <broker>/leases/<digest>, <broker>/interest/<digest>/<holder>;
    # the lease <broker>/lease-renewal
    "brokers": "broker/",
    # cluster/leaders.py: <job> (who leads since when)
    "leaders": "cluster/leaders/",
}


def view(backend: StorageBackend, owner: Owner) -> StorageView:
    """The view of ``backend`` (the barrier) that ``owner`` keeps its records in."""
    return StorageView(backend, PREFIXES[owner])


def cache_invalidator(
    feed: ChangeFeed, barrier: Barrier, tokens: TokenStore, policies: PolicyStore
) -> CacheInvalidator:
    """Route other servers' changes to the owners of the cached keys: the token store and the
    policy store (by their views' stored prefixes) and the barrier (its keyring)."""
    invalidator = CacheInvalidator(feed)
    invalidator.route(view(barrier, "tokens").stored_key(), tokens.changed)
    invalidator.route(view(barrier, "policies").stored_key(), policies.invalidate)
    invalidator.route(KEYRING_KEY, lambda _key: barrier.keyring_changed())
    return invalidator


def lease(owner: Owner, name: str) -> str:
    """The full name of the lease ``name`` taken through ``owner``'s view (for ``LeaderJobRef``)."""
    return PREFIXES[owner] + name
