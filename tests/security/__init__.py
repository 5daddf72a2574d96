"""Security regression tests: each replays a finding against a REAL ``vaultside serve``."""
