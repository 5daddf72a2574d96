"""What client generators need from the OpenAPI document, added to EVERY operation centrally.

``build_document`` (``vaultside.api.openapi``) passes its document through
``fit_for_generators``, so an operation added in any route module's ``OPERATIONS`` gets,
without per-operation edits:

- a url-safe (``[A-Za-z0-9_-]``), unique ``operationId``: the one the route declares, else a
  camelCase one derived from method and path (``GET /v1/secrets/{path}:versions`` ->
  ``getSecretsByPathVersions``); an unsafe id, or two operations that would share one, raise
  ``ValueError`` at build time;
- a tag: the first path segment after ``/v1`` (``secrets``, ``auth``, ``sys``...), declared
  once at the top level with a description;
- ``servers`` (scheme and host as variables; default the CLI's ``VAULTSIDE_ADDR``);
- shared components: every schema equal to a named one (``Error``, ``SecretMeta``, request
  bodies of pydantic models...) becomes a ``$ref``, and every error response a ``$ref`` to one
  ``components/responses`` entry per status;
- at least one 4xx response (400: the request pipeline can always refuse a malformed request);
- JSON Schema bounds where pydantic leaks its own (``Field(gt=0)`` on an ``Annotated`` type
  with a validator, e.g. ``Duration``, comes out as ``"gt": 0``): ``exclusiveMinimum`` etc.

The result is checked by ``@redocly/cli lint`` (recommended rules) in ``make test``
(tests/unit/api/test_openapi_lint.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

_S = dict[str, Any]

SCHEMA_REF = "#/components/schemas/"
RESPONSE_REF = "#/components/responses/"
DEFAULT_ADDR = "http://127.0.0.1:8200"  # the CLI client's default VAULTSIDE_ADDR
_URL_SAFE = re.compile(r"[A-Za-z0-9_-]+")
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")

TAG_DESCRIPTIONS: Mapping[str, str] = {
    "secrets": "Versioned key/value secrets: read, write, list, delete, metadata.",
    "resolve": "Resolve secret references (kv:..., vault:...) in one call.",
    "broker": "Read Vault/OpenBao secrets through a named broker.",
    "auth": "Tokens and login methods.",
    "sys": "Server state: health, seal status, policies, keys.",
    "scans": "Leak scans run by the server, and the known-value index.",
    "rotation": "Rotation policies, rotate now, status and history.",
    "consumers": "Heartbeats of sidecars and plugins (which versions they hold).",
    "metrics": "Prometheus metrics.",
    "openapi": "This document.",
}

# Why a status is given, for the shared error responses; others use the HTTP phrase.
_ERROR_DESCRIPTIONS: Mapping[int, str] = {
    304: "Not modified: the If-None-Match ETag still matches.",
    400: "Invalid request: the message names the field (never the value).",
    403: "Permission denied, or a missing or unknown token.",
    404: "Not found (or an unknown path suffix).",
    405: "Method not allowed.",
    409: "Conflict: check-and-set mismatch or an operation already running.",
    413: "Request body larger than server.max_body_bytes.",
    417: "Expectation failed: an Expect header other than 100-continue.",
    429: "Too many requests: throttled; retry later.",
    500: "Internal error: the body says only 'internal error' and a request id.",
    501: "Not initialized.",
    502: "The upstream (Vault/OpenBao) answered with an error.",
    503: "Sealed, not ready, or an upstream is unavailable.",
}


def operation_id(method: str, path: str) -> str:
    """A url-safe camelCase id: method, then each path word; ``{x}`` becomes ``ByX``."""
    words: list[str] = []
    for part in re.split(r"[/:]", path.removeprefix("/v1")):
        if not part:
            continue
        prefix = "By" if part.startswith("{") else ""
        tokens = [t for t in re.split(r"[^A-Za-z0-9]+", part) if t]
        words.append(prefix + "".join(t[:1].upper() + t[1:] for t in tokens))
    return method.lower() + "".join(words)


def tag_of(path: str) -> str:
    """The tag of a path: its first segment after ``/v1`` (``openapi.json`` -> ``openapi``)."""
    first = path.removeprefix("/v1").strip("/").split("/", 1)[0]
    return re.split(r"[^A-Za-z0-9_-]", first, maxsplit=1)[0] or "root"


def response_name(status: int) -> str:
    """``components/responses`` name of a status: its HTTP phrase in CamelCase."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return f"Status{status}"
    return "".join(w[:1].upper() + w[1:] for w in re.split(r"[^A-Za-z0-9]+", phrase) if w)


def _error_response(status: int) -> _S:
    try:
        fallback = HTTPStatus(status).phrase
    except ValueError:
        fallback = f"HTTP {status}"
    out: _S = {"description": _ERROR_DESCRIPTIONS.get(status, fallback)}
    if status >= 400:
        out["content"] = {"application/json": {"schema": {"$ref": SCHEMA_REF + "Error"}}}
    return out


# pydantic constraint names -> JSON Schema keywords (see the module docstring).
_BOUNDS: Mapping[str, str] = {
    "gt": "exclusiveMinimum",
    "ge": "minimum",
    "lt": "exclusiveMaximum",
    "le": "maximum",
}


def json_schema_bounds(node: Any) -> Any:
    """``node`` with pydantic's leaked ``gt``/``ge``/``lt``/``le`` numbers as JSON Schema."""
    if isinstance(node, dict):
        out: _S = {}
        for key, value in node.items():
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            if key in _BOUNDS and numeric and "type" in node:
                out.setdefault(_BOUNDS[key], value)
            else:
                out[key] = json_schema_bounds(value)
        return out
    if isinstance(node, list):
        return [json_schema_bounds(v) for v in node]
    return node


def _share(node: Any, named: list[tuple[str, _S]], *, skip_root: bool = False) -> Any:
    """``node`` with every sub-schema equal to a named schema replaced by its ``$ref``."""
    if isinstance(node, dict):
        if not skip_root:
            for name, schema in named:
                if node == schema:
                    return {"$ref": SCHEMA_REF + name}
        return {k: _share(v, named) for k, v in node.items()}
    if isinstance(node, list):
        return [_share(v, named) for v in node]
    return node


def fit_for_generators(
    doc: _S, schemas: Mapping[str, _S], *, default_addr: str = DEFAULT_ADDR
) -> _S:
    """``doc`` with ids, tags, servers, shared components and a 4xx on every operation.

    ``schemas`` names the schemas to share (``{"Error": {...}, "SecretWrite": {...}}``); a
    pydantic ``$defs`` section is hoisted into ``components/schemas``.
    """
    doc = json_schema_bounds(doc)
    schemas = {name: json_schema_bounds(schema) for name, schema in schemas.items()}
    components: _S = dict(doc.get("components") or {})
    shared: dict[str, _S] = dict(components.get("schemas") or {})
    named: list[tuple[str, _S]] = []
    for name, schema in {**shared, **schemas}.items():
        named.append((name, schema))
        definition = {k: v for k, v in schema.items() if k != "$defs"}
        shared[name] = definition
        for def_name, def_schema in (schema.get("$defs") or {}).items():
            shared.setdefault(def_name, def_schema)
    # Bigger schemas first, so a schema holding another is shared whole.
    named.sort(key=lambda item: len(repr(item[1])), reverse=True)
    # SecretMeta holds VersionMeta: definitions share the others, not themselves.
    shared = {name: _share(schema, named, skip_root=True) for name, schema in shared.items()}

    responses: dict[str, _S] = dict(components.get("responses") or {})
    seen_ids: dict[str, str] = {}
    tags: set[str] = set()
    paths: dict[str, dict[str, _S]] = {}
    used: set[str] = set()
    for path, methods in (doc.get("paths") or {}).items():
        out_methods: dict[str, _S] = {}
        for method, op in methods.items():
            if method not in _METHODS:
                out_methods[method] = op
                continue
            new = _share(op, named)
            oid = str(new.get("operationId") or operation_id(method, path))
            if not _URL_SAFE.fullmatch(oid):
                raise ValueError(f"operationId {oid!r} of {method} {path} is not url-safe")
            if oid in seen_ids:
                raise ValueError(f"operationId {oid} of {method} {path} also {seen_ids[oid]}")
            seen_ids[oid] = f"{method} {path}"
            new["operationId"] = oid
            tag = tag_of(path)
            new.setdefault("tags", [tag])
            tags.update(new["tags"])
            codes: dict[str, Any] = dict(new.get("responses") or {})
            if not any(str(code).startswith("4") for code in codes):
                codes["400"] = {}
            for code in list(codes):
                status = int(code)
                if status >= 300:
                    name = response_name(status)
                    responses.setdefault(name, _error_response(status))
                    codes[code] = {"$ref": RESPONSE_REF + name}
                    used.add(name)
            new["responses"] = dict(sorted(codes.items()))
            out_methods[method] = new
        paths[path] = out_methods

    components["schemas"] = dict(sorted(shared.items()))
    components["responses"] = dict(sorted((k, v) for k, v in responses.items() if k in used))
    out = dict(doc)
    out["servers"] = [
        {
            "url": "{scheme}://{host}",
            "description": "a vaultside server (the CLI's VAULTSIDE_ADDR)",
            "variables": {
                "scheme": {"default": default_addr.split("://", 1)[0], "enum": ["https", "http"]},
                "host": {"default": default_addr.split("://", 1)[1]},
            },
        }
    ]
    out["tags"] = [
        {"name": t, "description": TAG_DESCRIPTIONS.get(t, f"Routes under /v1/{t}.")}
        for t in sorted(tags)
    ]
    out["paths"] = paths
    out["components"] = components
    return _drop_unused_schemas(out)


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(SCHEMA_REF):
            found.add(ref.removeprefix(SCHEMA_REF))
        for v in node.values():
            _refs(v, found)
    elif isinstance(node, list):
        for v in node:
            _refs(v, found)


def _drop_unused_schemas(doc: _S) -> _S:
    """Keep only the component schemas something refers to (transitively)."""
    schemas: dict[str, _S] = doc["components"]["schemas"]
    used: set[str] = set()
    _refs({k: v for k, v in doc.items() if k != "components"}, used)
    _refs(doc["components"].get("responses"), used)
    frontier = set(used)
    while frontier:
        nxt: set[str] = set()
        _refs([schemas[n] for n in frontier if n in schemas], nxt)
        frontier = nxt - used
        used |= frontier
    doc["components"]["schemas"] = {k: v for k, v in schemas.items() if k in used}
    return doc
