"""``/v1/secrets``: versioned local secrets, with ``:action`` suffixes for operations.

Every handler authorizes before it touches the store, so a denied caller learns nothing
about whether a path exists (403 before 404).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from vaultside.api.body import json_response, no_content, query_int, read_model, secret_path
from vaultside.api.models import MetadataWrite, SecretWrite, VersionsBody
from vaultside.api.responses import KeyList, Response
from vaultside.api.spec import (
    Handler,
    Json,
    Operation,
    Schema,
    add_operations,
    path_param,
    query_param,
)
from vaultside.api.state import SERVICES, authorize, token_of
from vaultside.errors import InvalidRequestError, PermissionDeniedError
from vaultside.kv.models import SecretMeta, VersionMeta
from vaultside.kv.paths import validate_prefix
from vaultside.kv.store import KVStore
from vaultside.refs import MAX_VERSION

# A path never holds ':' so "{path}" never matches a ":action" route.
_PATTERNS = {"path": "[^:]+"}
_GET_PARAMS = frozenset({"version", "list"})


class SecretRead(Response):
    """One version's data and metadata."""

    data: dict[str, str]
    metadata: VersionMeta


class SecretWritten(Response):
    """The version a write created."""

    metadata: VersionMeta


class VersionList(Response):
    """Every version's metadata, oldest first."""

    versions: list[VersionMeta]


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
    return json_response(KeyList(keys=keys))


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
    path = secret_path(request)
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
    response = json_response(SecretRead(data=secret.data, metadata=secret.meta))
    # The ETag comes from the very version served, so it can never vouch for other data.
    response.headers["ETag"] = version_etag(secret.meta)
    response.headers["Cache-Control"] = "no-store"
    return response


async def write_secret(request: web.Request) -> web.Response:
    """``PUT``/``POST /v1/secrets/{path}``: a new version (``create`` if new, else ``update``)."""
    _check_params(request, frozenset())
    path = secret_path(request)
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
    return json_response(SecretWritten(metadata=meta))


async def delete_latest(request: web.Request) -> web.Response:
    """``DELETE /v1/secrets/{path}``: soft-delete the latest version."""
    _check_params(request, frozenset())
    path = secret_path(request)
    await authorize(request, _policy_path(path), "delete")
    await request.app[SERVICES].kv.delete_versions(path, None)
    return no_content()


def _versions_action(
    capability: str, act: Callable[[KVStore, str, list[int]], Awaitable[object]]
) -> Handler:
    """A ``POST /v1/secrets/{path}:<action>`` handler over a ``{"versions": [...]}`` body."""

    async def handler(request: web.Request) -> web.Response:
        path = secret_path(request)
        await authorize(request, _policy_path(path), capability)
        body = await read_model(request, VersionsBody)
        await act(request.app[SERVICES].kv, path, list(body.versions))
        return no_content()

    return handler


delete_versions = _versions_action("delete", KVStore.delete_versions)
undelete_versions = _versions_action("update", KVStore.undelete)
destroy_versions = _versions_action("delete", KVStore.destroy)


async def list_versions(request: web.Request) -> web.Response:
    """``GET /v1/secrets/{path}:versions``: every version's metadata, oldest first."""
    path = secret_path(request)
    await authorize(request, _policy_path(path), "read")
    meta = await request.app[SERVICES].kv.read_metadata(path)
    return json_response(VersionList(versions=list(meta.versions.values())))


async def read_metadata(request: web.Request) -> web.Response:
    """``GET /v1/secrets/{path}:metadata``."""
    path = secret_path(request)
    await authorize(request, _policy_path(path), "read")
    meta = await request.app[SERVICES].kv.read_metadata(path)
    return json_response(meta.to_json())


async def write_metadata(request: web.Request) -> web.Response:
    """``PUT /v1/secrets/{path}:metadata``: limits, type and custom metadata."""
    path = secret_path(request)
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
    path = secret_path(request)
    await authorize(request, _policy_path(path), "delete")
    await request.app[SERVICES].kv.delete_all(path)
    return no_content()


_SECRET = "/v1/secrets/{path}"
_PATH_PARAM = path_param("path")
_LIST = query_param("list", {"type": "boolean"})
_VERSION = query_param("version", {"type": "integer"})
_WRITE = "create (new path) or update (existing) on secrets/{path}"


def _op(
    method: str,
    suffix: str,
    summary: str,
    capability: str,
    handler: Handler,
    *,
    body: Schema | None = None,
    response: Schema | None = None,
    status: int = 200,
    errors: tuple[int, ...] = (400, 403, 404),
    params: tuple[Json, ...] = (_PATH_PARAM,),
) -> Operation:
    """An operation on one secret (``{path}`` parameter, 404 when it does not exist)."""
    return Operation(
        method, _SECRET + suffix, summary, capability, handler, body=body, response=response,
        status=status, errors=errors, params=params,
    )  # fmt: skip


# Plain paths first: the router tries resources in order, so the hot read path resolves on
# its first regex.
OPERATIONS = (
    Operation("GET", "/v1/secrets", "List top-level keys (needs ?list=true).",
              "list on secrets/", list_root, response=KeyList, params=(_LIST,)),
    _op("GET", "", "Read the latest or ?version=N; ETag / If-None-Match → 304. "
        "With ?list=true, list the keys under the prefix.",
        "read on secrets/{path} (list on secrets/{path}/ with ?list=true)",
        read_secret, response=SecretRead | KeyList, errors=(304, 400, 403, 404),
        params=(_PATH_PARAM, _VERSION, _LIST)),
    _op("PUT", "", "Write a new version (cas: expected current version, 0 = new).", _WRITE,
        write_secret, body=SecretWrite, response=SecretWritten,
        errors=(400, 403, 409, 413)),
    _op("POST", "", "Same as PUT.", _WRITE, write_secret, body=SecretWrite,
        response=SecretWritten, errors=(400, 403, 409, 413)),
    _op("DELETE", "", "Soft-delete the latest version.", "delete on secrets/{path}",
        delete_latest, status=204),
    _op("GET", ":versions", "Every version's metadata, oldest first.", "read on secrets/{path}",
        list_versions, response=VersionList),
    _op("GET", ":metadata", "The secret's metadata.", "read on secrets/{path}",
        read_metadata, response=SecretMeta),
    _op("PUT", ":metadata", "Set max_versions, custom_metadata, type, cas_required.",
        "update on secrets/{path}", write_metadata, body=MetadataWrite,
        response=SecretMeta),
    _op("DELETE", ":metadata", "Delete every version and the metadata.",
        "delete on secrets/{path}", delete_metadata, status=204),
    _op("POST", ":delete", "Soft-delete the given versions.", "delete on secrets/{path}",
        delete_versions, body=VersionsBody, status=204),
    _op("POST", ":undelete", "Restore soft-deleted versions.", "update on secrets/{path}",
        undelete_versions, body=VersionsBody, status=204),
    _op("POST", ":destroy", "Destroy versions (crypto-shred).", "delete on secrets/{path}",
        destroy_versions, body=VersionsBody, status=204),
)  # fmt: skip


def add_routes(app: web.Application) -> None:
    """Register the secrets routes (each ``:action`` is its own route, so OpenAPI sees it)."""
    add_operations(app, OPERATIONS, _PATTERNS)
