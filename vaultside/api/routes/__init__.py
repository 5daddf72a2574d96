"""Route groups: each module declares its ``OPERATIONS`` and exposes ``add_routes(app)``.

A new route group is its module plus one entry in ``ROUTE_MODULES``: the app registers it
(``vaultside.api.app``) and the OpenAPI document describes it (``vaultside.api.openapi``).
"""

from __future__ import annotations

from vaultside.api.routes import (
    broker,
    jwt_auth,
    policies,
    resolve,
    rotation,
    scans,
    secrets,
    sys,
    tokens,
)

ROUTE_MODULES = (secrets, resolve, broker, tokens, policies, sys, scans, rotation, jwt_auth)
