"""The local versioned secret store (Vault KV v2 semantics) on top of the barrier."""
