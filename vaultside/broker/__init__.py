"""Secret sources: the local store and Vault/OpenBao brokers behind one reference syntax."""
