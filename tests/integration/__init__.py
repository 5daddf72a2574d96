"""Integration tests against real dockerd, OpenBao, PostgreSQL and vaultside processes."""
