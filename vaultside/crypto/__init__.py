"""Envelope encryption: a sealed root key unlocks a keyring of data keys that encrypt records."""
