"""Durable storage of untrusted bytes; everything above the barrier sees plaintext."""
