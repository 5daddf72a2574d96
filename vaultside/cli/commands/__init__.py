"""One module per command group; each exposes ``cli`` (a click command or group)."""
