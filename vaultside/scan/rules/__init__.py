"""Built-in leak rules (package data)."""
