"""``/v1/sys/policies``: list, read, write and delete named policies."""

from __future__ import annotations

from aiohttp import web

from vaultside.api.body import json_response, no_content, read_json
from vaultside.api.models import StrictModel
from vaultside.api.responses import Response
from vaultside.api.spec import Operation, add_operations, path_param
from vaultside.api.state import SERVICES, authorize
from vaultside.auth.policy import Policy, validate_policy_name


class PolicyRule(StrictModel):
    """One rule: a path glob and the capabilities it grants."""

    path: str
    capabilities: list[str]


class PolicyWrite(StrictModel):
    """``PUT /v1/sys/policies/{name}`` (parsed by ``Policy.from_json``, which names each
    bad field)."""

    rules: list[PolicyRule]


class PolicyDoc(Response):
    """A named policy."""

    name: str
    rules: list[PolicyRule]


class PolicyList(Response):
    """Every policy name."""

    policies: list[str]


def _name(request: web.Request) -> str:
    return validate_policy_name(request.match_info["name"])


async def list_policies(request: web.Request) -> web.Response:
    """``GET /v1/sys/policies``."""
    await authorize(request, "sys/policies", "list")
    return json_response(PolicyList(policies=await request.app[SERVICES].policies.list()))


async def read_policy(request: web.Request) -> web.Response:
    """``GET /v1/sys/policies/{name}``."""
    name = _name(request)
    await authorize(request, f"sys/policies/{name}", "read")
    policy = await request.app[SERVICES].policies.get(name)
    return json_response(PolicyDoc.model_validate(policy.to_json()))


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


_POLICY = "/v1/sys/policies/{name}"
_NAME = (path_param("name"),)
OPERATIONS = (
    Operation("GET", "/v1/sys/policies", "Policy names.", "list on sys/policies",
              list_policies, response=PolicyList, errors=(403,)),
    Operation("GET", _POLICY, "Read a policy.", "read on sys/policies/{name}", read_policy,
              response=PolicyDoc, errors=(400, 403, 404), params=_NAME),
    Operation("PUT", _POLICY, "Create or replace a policy.", "update on sys/policies/{name}",
              write_policy, body=PolicyWrite, status=204, params=_NAME),
    Operation("DELETE", _POLICY, "Delete a policy.", "delete on sys/policies/{name}",
              delete_policy, status=204, params=_NAME),
)  # fmt: skip


def add_routes(app: web.Application) -> None:
    """Register the policy routes."""
    add_operations(app, OPERATIONS)
