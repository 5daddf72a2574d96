"""Schema versions of the SQL backends: which migration steps a database still needs.

Each SQL backend keeps its own tuple of migrations (step N is ``migrations[N - 1]``) and a
one-row version table; this module decides what to run, and refuses a database that a newer
vaultside already migrated.
"""

from __future__ import annotations

from collections.abc import Sequence

from vaultside.errors import UpstreamUnavailableError


def pending_migrations(
    current: int, migrations: Sequence[Sequence[str]]
) -> list[tuple[int, Sequence[str]]]:
    """``(version, statements)`` for every step after ``current``, oldest first.

    Raises ``UpstreamUnavailableError`` when the database is newer than this build knows.
    """
    latest = len(migrations)
    if current > latest:
        raise UpstreamUnavailableError(
            f"database schema version {current} is newer than supported ({latest});"
            " upgrade vaultside"
        )
    return [(number, migrations[number - 1]) for number in range(current + 1, latest + 1)]
