"""Real services for integration tests: dockerd, OpenBao, PostgreSQL and vaultside itself.

Each module starts one service in its own temp dir on a free loopback port and tears it down
completely (processes killed, mounts undone, temp dir removed). Start failures raise
``ServiceUnavailable`` with the tail of the service's log; the fixtures in ``fixtures.py``
turn that into a skip (or a failure under ``CI=true``).
"""
