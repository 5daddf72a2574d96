"""Docker labels vaultside reads, in reverse-DNS form (``io.vaultside.*``).

The first releases used ``vaultside.*`` (``vaultside.role``, ``vaultside.on-rotate``). Those
names stay accepted as deprecated aliases: ``canonical_labels`` renames each of them to its
``io.vaultside.*`` name (the new name wins when both are present) and logs one warning per
container (or roles-file entry), so code above this module only ever sees the new names:
container labels and the labels a role is bound to are both renamed, so they still match.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

log = logging.getLogger(__name__)
PREFIX = "io.vaultside."
LEGACY_PREFIX = "vaultside."
ROLE = PREFIX + "role"
ON_ROTATE = PREFIX + "on-rotate"
_WARNED_MAX = 4096
_warned: dict[str, None] = {}  # containers already warned about (insertion-ordered, bounded)


def canonical_name(key: str) -> str:
    """``vaultside.x`` → ``io.vaultside.x``; every other key unchanged."""
    return PREFIX + key.removeprefix(LEGACY_PREFIX) if key.startswith(LEGACY_PREFIX) else key


def canonical_labels(labels: Mapping[str, str], *, owner: str) -> dict[str, str]:
    """``labels`` with every deprecated name renamed (a new name present wins).

    ``owner`` (a container id, or a roles file's ``roles.<name>``) is warned about once.
    """
    legacy = sorted(k for k in labels if k.startswith(LEGACY_PREFIX))
    out = {k: v for k, v in labels.items() if not k.startswith(LEGACY_PREFIX)}
    for key in legacy:
        out.setdefault(canonical_name(key), labels[key])
    if legacy and owner not in _warned:
        _warned[owner] = None
        while len(_warned) > _WARNED_MAX:
            del _warned[next(iter(_warned))]
        log.warning(
            "deprecated label names; use io.vaultside.*",
            extra={
                "owner": owner[:64],
                "labels": legacy,
                "use": [canonical_name(k) for k in legacy],
            },
        )
    return out
