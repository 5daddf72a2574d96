"""Audit: one redacted, hash-chained record per request, written before the response."""
