"""Configuration: one Settings object built in the CLI and handed to wiring."""
