"""``/v1/rotation/...`` and ``/v1/consumers``: rotation policies, rotate-now, status, history.

Policy paths: ``rotation/<secret path>`` (read / update / delete, ``rotate`` to rotate now;
setting a policy also needs what the rotation touches, see ``rotation/authority.py``),
``rotation/`` (list) and ``consumers/<consumer id>`` (update, for heartbeats). Times in
responses are RFC3339 strings.
"""

from __future__ import annotations

from aiohttp import web

from vaultside.api.body import json_response, no_content, query_int, read_json
from vaultside.api.state import METRICS, SERVICES, authorize
from vaultside.clock import rfc3339
from vaultside.errors import NotFoundError
from vaultside.kv.paths import validate_path
from vaultside.rotation.propagate import parse_heartbeat
from vaultside.rotation.service import RotationService

_PATH = "{path:[^:]+}"
_TIME_FIELDS = ("next_run", "last_run", "grace_until", "started", "ended", "seen", "until")


def _times(obj: dict[str, object]) -> dict[str, object]:
    return {
        k: rfc3339(v) if k in _TIME_FIELDS and isinstance(v, int | float) else v
        for k, v in obj.items()
    }


def _service(request: web.Request) -> RotationService:
    service = request.app[SERVICES].rotation
    if service is None:
        raise NotFoundError("rotation is not enabled on this server")
    return service


def _path(request: web.Request) -> str:
    return validate_path(request.match_info["path"])


async def list_policies(request: web.Request) -> web.Response:
    """``GET /v1/rotation/policies``: every path with a policy."""
    await authorize(request, "rotation/", "list")
    return json_response({"keys": await _service(request).list_policies()})


async def read_policy(request: web.Request) -> web.Response:
    """``GET /v1/rotation/policies/{path}``."""
    path = _path(request)
    await authorize(request, f"rotation/{path}", "read")
    policy = await _service(request).get_policy(path)
    return json_response({"path": path, "policy": policy.to_json()})


async def write_policy(request: web.Request) -> web.Response:
    """``PUT /v1/rotation/policies/{path}``: create or replace (400 names each bad field).

    Beyond ``update`` here, the service checks everything the rotation will touch (403 names
    the missing capability) and records the caller as the runs' authority.
    """
    path = _path(request)
    info = await authorize(request, f"rotation/{path}", "update")
    body = await read_json(request)
    policy = await _service(request).set_policy(path, body, by=info)
    return json_response({"path": path, "policy": policy.to_json()})


async def delete_policy(request: web.Request) -> web.Response:
    """``DELETE /v1/rotation/policies/{path}``."""
    path = _path(request)
    await authorize(request, f"rotation/{path}", "delete")
    await _service(request).delete_policy(path)
    return no_content()


async def rotate_now(request: web.Request) -> web.Response:
    """``POST /v1/rotation/rotate/{path}``: one attempt now; 409 if one is running."""
    path = _path(request)
    await authorize(request, f"rotation/{path}", "rotate")
    run = await _service(request).rotate_now(path)
    return json_response({"run": _times(run.to_json())})


async def status(request: web.Request) -> web.Response:
    """``GET /v1/rotation/status/{path}``: policy (null if none), the store's current version,
    next run, last result, pending grace deletions and consumers — for any path."""
    path = _path(request)
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
    path = _path(request)
    await authorize(request, f"rotation/{path}", "read")
    raw = request.query.get("limit", "50")
    runs = await _service(request).history(path, query_int(raw, "limit", 1, 50))
    return json_response({"runs": [_times(r.to_json()) for r in runs]})


async def heartbeat(request: web.Request) -> web.Response:
    """``POST /v1/consumers``: a sidecar/plugin reports which versions it holds."""
    service = _service(request)
    consumer = parse_heartbeat(await read_json(request), service.clock.now())
    await authorize(request, f"consumers/{consumer.consumer}", "update")
    await service.heartbeat(consumer)
    return no_content()


def add_routes(app: web.Application) -> None:
    """Register the rotation routes and expose the rotation metrics with the API's."""
    r = app.router
    r.add_get("/v1/rotation/policies", list_policies, allow_head=False)
    r.add_get(f"/v1/rotation/policies/{_PATH}", read_policy, allow_head=False)
    r.add_put(f"/v1/rotation/policies/{_PATH}", write_policy)
    r.add_delete(f"/v1/rotation/policies/{_PATH}", delete_policy)
    r.add_post(f"/v1/rotation/rotate/{_PATH}", rotate_now)
    r.add_get(f"/v1/rotation/status/{_PATH}", status, allow_head=False)
    r.add_get(f"/v1/rotation/history/{_PATH}", history, allow_head=False)
    r.add_post("/v1/consumers", heartbeat)
    service = app[SERVICES].rotation
    if service is not None:
        m = service.engine.metrics
        for collector in (m.rotations, m.rollbacks, m.duration, m.policies, m.leader):
            app[METRICS].registry.register(collector)
