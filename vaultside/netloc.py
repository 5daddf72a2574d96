"""Network-location checks shared by every component that may send data to a URL.

The one place that decides what counts as "this host" for the rule "plain http only to
loopback" (JWT key URLs, rotation webhooks, registries).
"""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ::1 (with or without a port or brackets)."""
    h = host
    if h.startswith("["):
        h = h[1 : h.find("]")]
    elif h.count(":") == 1:
        h = h.split(":", 1)[0]
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False
