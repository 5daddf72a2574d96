"""Running several vaultside servers on one database: cross-server cache invalidation."""
