"""``/v1/secrets``: versioned local secrets, with ``:action`` suffixes for operations.

Every handler authorizes before it touches the store, so a denied caller learns nothing
about whether a path exists (403 before 404).
"""

from __future__ import annotations

from aiohttp import web

from vaultside.api.body import json_response, no_content, query_int, read_model
from vaultside.api.models import MetadataWrite, SecretWrite, VersionsBody
from vaultside.api.state import SERVICES, authorize, token_of
from vaultside.errors import InvalidRequestError, PermissionDeniedError
from vaultside.kv.models import VersionMeta
from vaultside.kv.paths import validate_path, validate_prefix
from vaultside.refs import MAX_VERSION

_PATH = "{path:[^:]+}"
_GET_PARAMS = frozenset({"version", "list"})


def _path(request: web.Request) -> str:
    return validate_path(request.match_info["path"])


def _policy_path(path: str) -> str:
    return f"secrets/{path}"


def _check_params(request: web.Request, allowed: frozenset[str]) -> None:
    unknown = sorted(set(request.query) - allowed)
    if unknown:
        raise InvalidRequestError(f"unknown query parameter(s): {', '.join(unknown)[:200]}")


def _is_list(request: web.Request) -> bool:
    value = request.query.get("list")
    if value is None or value in ("false", "0"):
        return False
    if value in ("true", "1", ""):
        return True
    raise InvalidRequestError("query parameter 'list' must be true or false")


def _version(request: web.Request) -> int | None:
    text = request.query.get("version")
    if text is None or text == "0":
        return None
    return query_int(text, "version", 1, MAX_VERSION)


def version_etag(meta: VersionMeta) -> str:
    """A strong validator of a read's body: which version it is and when it was written.

    A version's data never changes, and re-creating a path after ``:metadata`` deletion gets
    a new creation time, so equal tags mean an equal body. Metadata-only changes (max
    versions, custom metadata) keep the tag: the body did not change.
    """
    return f'"v{meta.version}.{round(meta.created_time * 1_000_000)}"'


def _etag_matches(header: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison against an ``If-None-Match`` list (``*`` matches anything)."""
    if header is None:
        return False
    for candidate in header.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


async def _list(request: web.Request, prefix: str) -> web.Response:
    prefix = validate_prefix(prefix.rstrip("/"))
    # Lists are governed by ``list`` on the directory path with a trailing slash.
    await authorize(request, f"secrets/{prefix}/" if prefix else "secrets/", "list")
    keys = await request.app[SERVICES].kv.list(prefix)
    return json_response({"keys": keys})


async def list_root(request: web.Request) -> web.Response:
    """``GET /v1/secrets?list=true``: the top-level keys."""
    _check_params(request, frozenset({"list"}))
    if not _is_list(request):
        raise InvalidRequestError("GET /v1/secrets needs ?list=true")
    return await _list(request, "")


async def read_secret(request: web.Request) -> web.StreamResponse:
    """``GET /v1/secrets/{path}``: the latest (or ``?version=N``) data; ETag for polling."""
    _check_params(request, _GET_PARAMS)
    if _is_list(request):
        return await _list(request, request.match_info["path"])
    path = _path(request)
    version = _version(request)
    await authorize(request, _policy_path(path), "read")
    kv = request.app[SERVICES].kv
    condition = request.headers.get("If-None-Match")
    if condition is not None:
        # One metadata read answers a poll whose version has not changed (no data read).
        meta = await kv.read_metadata(path)
        current = meta.versions.get(meta.current_version if version is None else version)
        if current is not None and current.deletion_time is None and not current.destroyed:
            etag = version_etag(current)
            if _etag_matches(condition, etag):
                return web.Response(status=304, headers={"ETag": etag})
    secret = await kv.get(path, version)
    response = json_response({"data": secret.data, "metadata": secret.meta.to_json()})
    # The ETag comes from the very version served, so it can never vouch for other data.
    response.headers["ETag"] = version_etag(secret.meta)
    response.headers["Cache-Control"] = "no-store"
    return response


async def write_secret(request: web.Request) -> web.Response:
    """``PUT``/``POST /v1/secrets/{path}``: a new version (``create`` if new, else ``update``)."""
    _check_params(request, frozenset())
    path = _path(request)
    services = request.app[SERVICES]
    info = token_of(request)
    policy_path = _policy_path(path)
    capabilities = await services.authorizer.capabilities(info, policy_path)
    if not capabilities & {"create", "update"}:
        raise PermissionDeniedError()
    body = await read_model(request, SecretWrite)
    needed = "update" if await services.kv.exists(path) else "create"
    await services.authorizer.check(info, policy_path, needed)
    meta = await services.kv.put(path, body.data, cas=body.cas, secret_type=body.type)
    return json_response({"metadata": meta.to_json()})


async def delete_latest(request: web.Request) -> web.Response:
    """``DELETE /v1/secrets/{path}``: soft-delete the latest version."""
    _check_params(request, frozenset())
    path = _path(request)
    await authorize(request, _policy_path(path), "delete")
    await request.app[SERVICES].kv.delete_versions(path, None)
    return no_content()


async def delete_versions(request: web.Request) -> web.Response:
    """``POST /v1/secrets/{path}:delete``: soft-delete the given versions."""
    path = _path(request)
    await authorize(request, _policy_path(path), "delete")
    body = await read_model(request, VersionsBody)
    await request.app[SERVICES].kv.delete_versions(path, list(body.versions))
    return no_content()


async def undelete_versions(request: web.Request) -> web.Response:
    """``POST /v1/secrets/{path}:undelete``: restore soft-deleted versions."""
    path = _path(request)
    await authorize(request, _policy_path(path), "update")
    body = await read_model(request, VersionsBody)
    await request.app[SERVICES].kv.undelete(path, list(body.versions))
    return no_content()


async def destroy_versions(request: web.Request) -> web.Response:
    """``POST /v1/secrets/{path}:destroy``: crypto-shred the given versions."""
    path = _path(request)
    await authorize(request, _policy_path(path), "delete")
    body = await read_model(request, VersionsBody)
    await request.app[SERVICES].kv.destroy(path, list(body.versions))
    return no_content()


async def list_versions(request: web.Request) -> web.Response:
    """``GET /v1/secrets/{path}:versions``: every version's metadata, oldest first."""
    path = _path(request)
    await authorize(request, _policy_path(path), "read")
    meta = await request.app[SERVICES].kv.read_metadata(path)
    versions = [meta.versions[n].to_json() for n in sorted(meta.versions)]
    return json_response({"versions": versions})


async def read_metadata(request: web.Request) -> web.Response:
    """``GET /v1/secrets/{path}:metadata``."""
    path = _path(request)
    await authorize(request, _policy_path(path), "read")
    meta = await request.app[SERVICES].kv.read_metadata(path)
    return json_response(meta.to_json())


async def write_metadata(request: web.Request) -> web.Response:
    """``PUT /v1/secrets/{path}:metadata``: limits, type and custom metadata."""
    path = _path(request)
    await authorize(request, _policy_path(path), "update")
    body = await read_model(request, MetadataWrite)
    meta = await request.app[SERVICES].kv.write_metadata(
        path,
        max_versions=body.max_versions,
        custom_metadata=body.custom_metadata,
        secret_type=body.type,
        cas_required=body.cas_required,
    )
    return json_response(meta.to_json())


async def delete_metadata(request: web.Request) -> web.Response:
    """``DELETE /v1/secrets/{path}:metadata``: every version and the metadata."""
    path = _path(request)
    await authorize(request, _policy_path(path), "delete")
    await request.app[SERVICES].kv.delete_all(path)
    return no_content()


def add_routes(app: web.Application) -> None:
    """Register the secrets routes (each ``:action`` is its own route, so OpenAPI sees it)."""
    r = app.router
    r.add_get("/v1/secrets", list_root, allow_head=False)
    # Plain paths first: "{path}" never matches a ":action" (no ':' in paths), and the router
    # tries resources in order, so the hot read path resolves on its first regex.
    r.add_get(f"/v1/secrets/{_PATH}", read_secret, allow_head=False)
    r.add_put(f"/v1/secrets/{_PATH}", write_secret)
    r.add_post(f"/v1/secrets/{_PATH}", write_secret)
    r.add_delete(f"/v1/secrets/{_PATH}", delete_latest)
    r.add_get(f"/v1/secrets/{_PATH}:versions", list_versions, allow_head=False)
    r.add_get(f"/v1/secrets/{_PATH}:metadata", read_metadata, allow_head=False)
    r.add_put(f"/v1/secrets/{_PATH}:metadata", write_metadata)
    r.add_delete(f"/v1/secrets/{_PATH}:metadata", delete_metadata)
    r.add_post(f"/v1/secrets/{_PATH}:delete", delete_versions)
    r.add_post(f"/v1/secrets/{_PATH}:undelete", undelete_versions)
    r.add_post(f"/v1/secrets/{_PATH}:destroy", destroy_versions)
