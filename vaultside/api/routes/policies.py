"""``/v1/sys/policies``: list, read, write and delete named policies."""

from __future__ import annotations

from aiohttp import web

from vaultside.api.body import json_response, no_content, read_json
from vaultside.api.state import SERVICES, authorize
from vaultside.auth.policy import Policy, validate_policy_name


def _name(request: web.Request) -> str:
    return validate_policy_name(request.match_info["name"])


async def list_policies(request: web.Request) -> web.Response:
    """``GET /v1/sys/policies``."""
    await authorize(request, "sys/policies", "list")
    return json_response({"policies": await request.app[SERVICES].policies.list()})


async def read_policy(request: web.Request) -> web.Response:
    """``GET /v1/sys/policies/{name}``."""
    name = _name(request)
    await authorize(request, f"sys/policies/{name}", "read")
    policy = await request.app[SERVICES].policies.get(name)
    return json_response(policy.to_json())


async def write_policy(request: web.Request) -> web.Response:
    """``PUT /v1/sys/policies/{name}``: create or replace."""
    name = _name(request)
    await authorize(request, f"sys/policies/{name}", "update")
    policy = Policy.from_json(name, await read_json(request))
    await request.app[SERVICES].policies.put(policy)
    return no_content()


async def delete_policy(request: web.Request) -> web.Response:
    """``DELETE /v1/sys/policies/{name}``."""
    name = _name(request)
    await authorize(request, f"sys/policies/{name}", "delete")
    await request.app[SERVICES].policies.delete(name)
    return no_content()


def add_routes(app: web.Application) -> None:
    """Register the policy routes."""
    r = app.router
    r.add_get("/v1/sys/policies", list_policies, allow_head=False)
    r.add_get("/v1/sys/policies/{name}", read_policy, allow_head=False)
    r.add_put("/v1/sys/policies/{name}", write_policy)
    r.add_delete("/v1/sys/policies/{name}", delete_policy)
