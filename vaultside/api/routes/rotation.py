"""``/v1/rotation/...`` and ``/v1/consumers``: rotation policies, rotate-now, status, history.

Policy paths: ``rotation/<secret path>`` (read / update / delete, ``rotate`` to rotate now;
setting a policy also needs what the rotation touches, see ``rotation/authority.py``),
``rotation/`` (list) and ``consumers/<consumer id>`` (update, for heartbeats). Times in
responses are RFC3339 strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web

from vaultside.api.body import json_response, no_content, query_int, read_json, secret_path
from vaultside.api.responses import KeyList, Response
from vaultside.api.spec import STR, Json, Operation, add_operations, path_param
from vaultside.api.state import METRICS, SERVICES, authorize, configured
from vaultside.clock import rfc3339
from vaultside.errors import NotFoundError
from vaultside.rotation.propagate import parse_heartbeat
from vaultside.rotation.service import RotationService


class RotationPolicyRead(Response):
    """A secret's rotation policy (``policy``: the body it was set with, normalised)."""

    path: str
    policy: dict[str, Any]


class RotationRunResult(Response):
    """One rotation run (times as RFC3339 strings)."""

    run: dict[str, Any]


class RotationHistory(Response):
    """Rotation runs, newest first."""

    runs: list[dict[str, Any]]


_TIME_FIELDS = ("next_run", "last_run", "grace_until", "started", "ended", "seen", "until")


def _times(obj: dict[str, object]) -> dict[str, object]:
    return {
        k: rfc3339(v) if k in _TIME_FIELDS and isinstance(v, int | float) else v
        for k, v in obj.items()
    }


def _service(request: web.Request) -> RotationService:
    disabled = NotFoundError("rotation is not enabled on this server")
    return configured(request.app[SERVICES].rotation, disabled)


async def list_policies(request: web.Request) -> web.Response:
    """``GET /v1/rotation/policies``: every path with a policy."""
    await authorize(request, "rotation/", "list")
    return json_response(KeyList(keys=await _service(request).list_policies()))


async def read_policy(request: web.Request) -> web.Response:
    """``GET /v1/rotation/policies/{path}``."""
    path = secret_path(request)
    await authorize(request, f"rotation/{path}", "read")
    policy = await _service(request).get_policy(path)
    return json_response(RotationPolicyRead(path=path, policy=policy.to_json()))


async def write_policy(request: web.Request) -> web.Response:
    """``PUT /v1/rotation/policies/{path}``: create or replace (400 names each bad field).

    Beyond ``update`` here, the service checks everything the rotation will touch (403 names
    the missing capability) and records the caller as the runs' authority.
    """
    path = secret_path(request)
    info = await authorize(request, f"rotation/{path}", "update")
    body = await read_json(request)
    policy = await _service(request).set_policy(path, body, by=info)
    return json_response(RotationPolicyRead(path=path, policy=policy.to_json()))


async def delete_policy(request: web.Request) -> web.Response:
    """``DELETE /v1/rotation/policies/{path}``."""
    path = secret_path(request)
    await authorize(request, f"rotation/{path}", "delete")
    await _service(request).delete_policy(path)
    return no_content()


async def rotate_now(request: web.Request) -> web.Response:
    """``POST /v1/rotation/rotate/{path}``: one attempt now; 409 if one is running."""
    path = secret_path(request)
    await authorize(request, f"rotation/{path}", "rotate")
    run = await _service(request).rotate_now(path)
    return json_response(RotationRunResult(run=_times(run.to_json())))


async def status(request: web.Request) -> web.Response:
    """``GET /v1/rotation/status/{path}``: policy (null if none), the store's current version,
    next run, last result, pending grace deletions and consumers — for any path."""
    path = secret_path(request)
    await authorize(request, f"rotation/{path}", "read")
    doc = await _service(request).status(path)
    state, consumers, grace = doc["state"], doc["consumers"], doc["grace"]
    assert isinstance(state, dict) and isinstance(consumers, list) and isinstance(grace, list)
    doc["state"] = _times(state)
    authority = doc.get("authority")
    if isinstance(authority, dict):
        doc["authority"] = {
            k: rfc3339(v) if k == "granted_at" and isinstance(v, int | float) else v
            for k, v in authority.items()
        }
    doc["consumers"] = [_times(c) for c in consumers]
    doc["grace"] = [_times(g) for g in grace]
    return json_response(doc)


async def history(request: web.Request) -> web.Response:
    """``GET /v1/rotation/history/{path}[?limit=N]``: newest first."""
    path = secret_path(request)
    await authorize(request, f"rotation/{path}", "read")
    raw = request.query.get("limit", "50")
    runs = await _service(request).history(path, query_int(raw, "limit", 1, 50))
    return json_response(RotationHistory(runs=[_times(r.to_json()) for r in runs]))


async def heartbeat(request: web.Request) -> web.Response:
    """``POST /v1/consumers``: a sidecar/plugin reports which versions it holds."""
    service = _service(request)
    consumer = parse_heartbeat(await read_json(request), service.clock.now())
    await authorize(request, f"consumers/{consumer.consumer}", "update")
    await service.heartbeat(consumer)
    return no_content()


_DURATION: Json = {"type": ["number", "string"], "description": "seconds or e.g. '1h30m'"}
_TARGET_NAME: Json = {
    "type": "string",
    "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$",
    "description": "a target declared by the operator in [rotation.targets.<name>]",
}


def _target(kind: str, props: Json, required: Sequence[str] = ()) -> Json:
    return {
        "type": "object",
        "properties": {"kind": {"const": kind}, **props},
        "required": ["kind", *required],
        "additionalProperties": False,
    }


# The rotation policy body (docs/rotation.md), parsed by the rotation service (which names
# each bad field). command/webhook name a declared target: the API never carries argv, URLs
# or environment (such fields are refused with a 400 naming them).
ROTATION_POLICY: Json = {
    "title": "RotationPolicy",
    "type": "object",
    "properties": {
        "every": _DURATION,
        "cron": STR,
        "jitter": _DURATION,
        "window": {
            "type": "object",
            "properties": {"start": STR, "end": STR},
            "required": ["start", "end"],
            "additionalProperties": False,
        },
        "grace": _DURATION,
        "max_attempts": {"type": "integer", "minimum": 1, "maximum": 20},
        "backoff": _DURATION,
        "enabled": {"type": "boolean"},
        "on_leak": {"enum": ["report", "rotate"]},
        "generator": {
            "type": "object",
            "properties": {"kind": {"enum": ["password", "bytes", "token", "keypair"]}},
            "required": ["kind"],
        },
        "target": {
            "oneOf": [
                _target("kv", {}),
                _target("vault-kv", {"broker": STR, "mount": STR, "path": STR},
                        ("broker", "mount", "path")),
                _target("postgres", {
                    "admin_dsn_ref": STR,
                    "strategy": {"enum": ["single", "alternating"]},
                    "roles": {"type": "array", "items": STR, "minItems": 1, "maxItems": 2},
                    "username_field": STR,
                    "connect_timeout": {"type": "number"},
                }, ("admin_dsn_ref", "roles")),
                _target("command", {"name": _TARGET_NAME}, ("name",)),
                _target("webhook", {"name": _TARGET_NAME}, ("name",)),
            ]
        },
    },
    "required": ["generator", "target"],
    "additionalProperties": False,
}  # fmt: skip
_OBJECT: Json = {"type": "object"}
_P = (path_param("path"),)
OPERATIONS = (
    Operation("GET", "/v1/rotation/policies", "Paths that have a rotation policy.",
              "list on rotation/", list_policies, response=KeyList, errors=(403,)),
    Operation("GET", "/v1/rotation/policies/{path}", "A secret's rotation policy.",
              "read on rotation/{path}", read_policy, response=RotationPolicyRead,
              errors=(400, 403, 404), params=_P),
    Operation("PUT", "/v1/rotation/policies/{path}", "Set a rotation policy (every or cron, "
              "jitter, window, grace, generator, target; see docs/rotation.md); 400 names "
              "each bad field. command/webhook targets name an operator-declared target; "
              "argv, url, env and the like are refused. 403 names the first capability "
              "missing for what the rotation touches; the caller is recorded as the "
              "authority every run is re-checked against.",
              "update on rotation/{path}; create/update on secrets/{path}; read on it for "
              "command/webhook; read on referenced secrets; update on the upstream path for "
              "vault-kv; sudo on rotation/targets/{name}", write_policy, body=ROTATION_POLICY,
              response=RotationPolicyRead, errors=(400, 403), params=_P),
    Operation("DELETE", "/v1/rotation/policies/{path}", "Stop rotating a secret.",
              "delete on rotation/{path}", delete_policy, status=204, errors=(400, 403, 404),
              params=_P),
    Operation("POST", "/v1/rotation/rotate/{path}", "Rotate now (one attempt); 409 if a "
              "rotation of it is running.", "rotate on rotation/{path}", rotate_now,
              response=RotationRunResult, errors=(400, 403, 404, 409), params=_P),
    Operation("GET", "/v1/rotation/status/{path}", "Next run, last result, versions, grace "
              "and the version each consumer holds.", "read on rotation/{path}", status,
              response=_OBJECT, errors=(400, 403, 404), params=_P),
    Operation("GET", "/v1/rotation/history/{path}", "Rotation runs, newest first (?limit).",
              "read on rotation/{path}", history, response=RotationHistory,
              errors=(400, 403), params=_P),
    Operation("POST", "/v1/consumers", "Heartbeat: which secret versions a sidecar/plugin "
              "holds.", "update on consumers/{consumer}", heartbeat, body=_OBJECT, status=204,
              errors=(400, 403)),
)  # fmt: skip


def add_routes(app: web.Application) -> None:
    """Register the rotation routes and expose the rotation metrics with the API's."""
    add_operations(app, OPERATIONS, {"path": "[^:]+"})
    service = app[SERVICES].rotation
    if service is not None:
        m = service.engine.metrics
        for collector in (m.rotations, m.rollbacks, m.duration, m.policies, m.leader):
            app[METRICS].registry.register(collector)
