"""The OpenAPI 3.1 document of the HTTP API, and its Markdown rendering for ``docs/api.md``.

``OPERATIONS`` documents the core routes; a route module may add its own ``OPERATIONS``
(collected by ``vaultside.api.app.all_operations``). A unit test compares the served document
with the live router, so a route added without documentation fails the build.

Regenerate the docs with ``python -m vaultside.api.openapi --markdown > docs/api.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel

from vaultside import __version__
from vaultside.api import models
from vaultside.api.openapi_fit import fit_for_generators

_S = dict[str, object]
_STR: _S = {"type": "string"}
_TIME: _S = {"type": ["string", "null"], "format": "date-time"}
_ERROR: _S = {
    "type": "object",
    "properties": {"errors": {"type": "array", "items": _STR}, "request_id": _STR},
    "required": ["errors", "request_id"],
}
VERSION_META: _S = {
    "type": "object",
    "properties": {
        "version": {"type": "integer"},
        "created_time": _TIME,
        "deletion_time": _TIME,
        "destroyed": {"type": "boolean"},
    },
}
SECRET_META: _S = {
    "type": "object",
    "properties": {
        "path": _STR,
        "type": _STR,
        "current_version": {"type": "integer"},
        "oldest_version": {"type": "integer"},
        "max_versions": {"type": "integer"},
        "cas_required": {"type": "boolean"},
        "created_time": _TIME,
        "updated_time": _TIME,
        "custom_metadata": {"type": "object", "additionalProperties": _STR},
        "versions": {"type": "object", "additionalProperties": VERSION_META},
    },
}
TOKEN_INFO: _S = {
    "type": "object",
    "properties": {
        "accessor": _STR,
        "policies": {"type": "array", "items": _STR},
        "display_name": _STR,
        "creation_time": _TIME,
        "expire_time": _TIME,
        "num_uses_left": {"type": ["integer", "null"]},
        "parent_accessor": {"type": ["string", "null"]},
        "renewable": {"type": "boolean"},
        "ttl": {"type": ["number", "null"]},
        "meta": {"type": "object", "additionalProperties": _STR},
    },
}
TOKEN_AUTH: _S = {
    "type": "object",
    "properties": {
        "auth": {
            "type": "object",
            "properties": {
                "token": {**_STR, "description": "only in the create response"},
                "accessor": _STR,
                "policies": {"type": "array", "items": _STR},
                "expire_time": _TIME,
                "ttl": {"type": ["number", "null"]},
                "renewable": {"type": "boolean"},
            },
        }
    },
}
POLICY: _S = {
    "type": "object",
    "properties": {
        "name": _STR,
        "rules": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"path": _STR, "capabilities": {"type": "array", "items": _STR}},
                "required": ["path", "capabilities"],
                "additionalProperties": False,
            },
        },
    },
}
_DURATION: _S = {"type": ["number", "string"], "description": "seconds or e.g. '1h30m'"}
_TARGET_NAME: _S = {
    "type": "string",
    "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$",
    "description": "a target declared by the operator in [rotation.targets.<name>]",
}


def _target(kind: str, props: _S, required: Sequence[str] = ()) -> _S:
    return {
        "type": "object",
        "properties": {"kind": {"const": kind}, **props},
        "required": ["kind", *required],
        "additionalProperties": False,
    }


# The rotation policy body (docs/rotation.md). command/webhook name a declared target: the API
# never carries argv, URLs or environment (such fields are refused with a 400 naming them).
ROTATION_POLICY: _S = {
    "type": "object",
    "properties": {
        "every": _DURATION,
        "cron": _STR,
        "jitter": _DURATION,
        "window": {
            "type": "object",
            "properties": {"start": _STR, "end": _STR},
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
                _target("vault-kv", {"broker": _STR, "mount": _STR, "path": _STR},
                        ("broker", "mount", "path")),
                _target("postgres", {
                    "admin_dsn_ref": _STR,
                    "strategy": {"enum": ["single", "alternating"]},
                    "roles": {"type": "array", "items": _STR, "minItems": 1, "maxItems": 2},
                    "username_field": _STR,
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
POLICY_WRITE: _S = {
    "type": "object",
    "properties": {"rules": POLICY["properties"]["rules"]},  # type: ignore[index]
    "required": ["rules"],
    "additionalProperties": False,
}
HEALTH: _S = {
    "type": "object",
    "properties": {
        "initialized": {"type": "boolean"},
        "sealed": {"type": "boolean"},
        "standby": {"type": "boolean"},
        "server_time_utc": {"type": "integer"},
        "version": _STR,
    },
}


@dataclass(frozen=True)
class Operation:
    """One documented route: method, path template, who may call it, what goes in and out."""

    method: str
    path: str
    summary: str
    capability: str | None  # "read on secrets/{path}", None for public routes
    body: type[BaseModel] | _S | None = None
    response: _S | None = None
    status: int = 200
    errors: tuple[int, ...] = (400, 403)
    params: tuple[_S, ...] = field(default_factory=tuple)


_PATH_PARAM: _S = {"name": "path", "in": "path", "required": True, "schema": _STR}
_NAME_PARAM: _S = {"name": "name", "in": "path", "required": True, "schema": _STR}
_LIST_PARAM: _S = {"name": "list", "in": "query", "schema": {"type": "boolean"}}
_VERSION_PARAM: _S = {"name": "version", "in": "query", "schema": {"type": "integer"}}
_SECRET = "/v1/secrets/{path}"
_OK_META: _S = {"type": "object", "properties": {"metadata": VERSION_META}}
_READ: _S = {
    "type": "object",
    "properties": {
        "data": {"type": "object", "additionalProperties": _STR},
        "metadata": VERSION_META,
        "keys": {"type": "array", "items": _STR, "description": "with ?list=true"},
    },
}
_RESOLVED: _S = {
    "type": "object",
    "properties": {
        "values": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "properties": {
                    "value": _STR,
                    "version": _STR,
                    "stale": {"type": "boolean"},
                    "lease_id": {"type": ["string", "null"]},
                },
            },
        }
    },
}

_CODE: _S = {"type": "integer", "minimum": 200, "maximum": 599}
_HEALTH_CODES = ("activecode", "standbycode", "sealedcode", "uninitcode")
_HEALTH_PARAMS: tuple[_S, ...] = (
    *(_S(name=n, schema=_CODE) | {"in": "query"} for n in _HEALTH_CODES),
    {"name": "standbyok", "in": "query", "schema": {"type": "boolean"}},
)

OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", "/v1/secrets", "List top-level keys (needs ?list=true).",
              "list on secrets/", response={"type": "object", "properties": {
                  "keys": {"type": "array", "items": _STR}}}, params=(_LIST_PARAM,)),
    Operation("GET", _SECRET, "Read the latest or ?version=N; ETag / If-None-Match → 304. "
              "With ?list=true, list the keys under the prefix.",
              "read on secrets/{path} (list on secrets/{path}/ with ?list=true)",
              response=_READ, errors=(304, 400, 403, 404),
              params=(_PATH_PARAM, _VERSION_PARAM, _LIST_PARAM)),
    Operation("PUT", _SECRET, "Write a new version (cas: expected current version, 0 = new).",
              "create (new path) or update (existing) on secrets/{path}",
              body=models.SecretWrite, response=_OK_META, errors=(400, 403, 409, 413),
              params=(_PATH_PARAM,)),
    Operation("POST", _SECRET, "Same as PUT.",
              "create (new path) or update (existing) on secrets/{path}",
              body=models.SecretWrite, response=_OK_META, errors=(400, 403, 409, 413),
              params=(_PATH_PARAM,)),
    Operation("DELETE", _SECRET, "Soft-delete the latest version.", "delete on secrets/{path}",
              status=204, errors=(400, 403, 404), params=(_PATH_PARAM,)),
    Operation("POST", _SECRET + ":delete", "Soft-delete the given versions.",
              "delete on secrets/{path}", body=models.VersionsBody, status=204,
              errors=(400, 403, 404), params=(_PATH_PARAM,)),
    Operation("POST", _SECRET + ":undelete", "Restore soft-deleted versions.",
              "update on secrets/{path}", body=models.VersionsBody, status=204,
              errors=(400, 403, 404), params=(_PATH_PARAM,)),
    Operation("POST", _SECRET + ":destroy", "Destroy versions (crypto-shred).",
              "delete on secrets/{path}", body=models.VersionsBody, status=204,
              errors=(400, 403, 404), params=(_PATH_PARAM,)),
    Operation("GET", _SECRET + ":versions", "Every version's metadata, oldest first.",
              "read on secrets/{path}", response={"type": "object", "properties": {
                  "versions": {"type": "array", "items": VERSION_META}}},
              errors=(400, 403, 404), params=(_PATH_PARAM,)),
    Operation("GET", _SECRET + ":metadata", "The secret's metadata.", "read on secrets/{path}",
              response=SECRET_META, errors=(400, 403, 404), params=(_PATH_PARAM,)),
    Operation("PUT", _SECRET + ":metadata", "Set max_versions, custom_metadata, type, "
              "cas_required.", "update on secrets/{path}", body=models.MetadataWrite,
              response=SECRET_META, errors=(400, 403, 404), params=(_PATH_PARAM,)),
    Operation("DELETE", _SECRET + ":metadata", "Delete every version and the metadata.",
              "delete on secrets/{path}", status=204, errors=(400, 403, 404),
              params=(_PATH_PARAM,)),
    Operation("POST", "/v1/resolve", "Resolve secret references (kv:..., vault:...).",
              "read on each reference's policy path", body=models.ResolveBody,
              response=_RESOLVED, errors=(400, 403, 404, 502, 503)),
    Operation("GET", "/v1/broker/{broker}/{mount}/{path}", "Read a Vault/OpenBao secret "
              "through a named broker (path may end with :metadata); X-Vaultside-Stale when "
              "served from cache.", "read on broker/{broker}/{mount}/{path}",
              response={"type": "object", "properties": {
                  "data": {"type": "object"}, "metadata": {"type": "object"},
                  "lease": {"type": ["object", "null"]}}},
              errors=(400, 403, 404, 502, 503),
              params=({"name": "broker", "in": "path", "required": True, "schema": _STR},
                      {"name": "mount", "in": "path", "required": True, "schema": _STR},
                      _PATH_PARAM, _VERSION_PARAM)),
    Operation("POST", "/v1/auth/token/create", "Create a child token (only time it is shown).",
              "create on auth/token/create", body=models.TokenCreate, response=TOKEN_AUTH),
    Operation("GET", "/v1/auth/token/lookup-self", "The caller's token info.",
              "read on auth/token/lookup-self (default policy)",
              response={"type": "object", "properties": {"data": TOKEN_INFO}}, errors=(403,)),
    Operation("POST", "/v1/auth/token/lookup", "Look up a token by token or accessor.",
              "read on auth/token/lookup", body=models.TokenOrAccessor,
              response={"type": "object", "properties": {"data": TOKEN_INFO}},
              errors=(400, 403, 404)),
    Operation("POST", "/v1/auth/token/renew-self", "Extend the caller's token.",
              "update on auth/token/renew-self (default policy)", body=models.RenewSelf,
              response=TOKEN_AUTH),
    Operation("POST", "/v1/auth/token/renew", "Extend a token by accessor.",
              "update on auth/token/renew", body=models.Renew, response=TOKEN_AUTH,
              errors=(400, 403, 404)),
    Operation("POST", "/v1/auth/token/revoke", "Revoke a token and its children.",
              "update on auth/token/revoke", body=models.TokenOrAccessor, status=204),
    Operation("POST", "/v1/auth/token/revoke-self", "Revoke the caller's token and children.",
              "update on auth/token/revoke-self (default policy)", status=204),
    Operation("GET", "/v1/sys/policies", "Policy names.", "list on sys/policies",
              response={"type": "object", "properties": {
                  "policies": {"type": "array", "items": _STR}}}, errors=(403,)),
    Operation("GET", "/v1/sys/policies/{name}", "Read a policy.", "read on sys/policies/{name}",
              response=POLICY, errors=(400, 403, 404), params=(_NAME_PARAM,)),
    Operation("PUT", "/v1/sys/policies/{name}", "Create or replace a policy.",
              "update on sys/policies/{name}", body=POLICY_WRITE, status=204,
              params=(_NAME_PARAM,)),
    Operation("DELETE", "/v1/sys/policies/{name}", "Delete a policy.",
              "delete on sys/policies/{name}", status=204, params=(_NAME_PARAM,)),
    Operation("GET", "/v1/sys/health", "200 when unsealed, 503 when sealed, 501 when not "
              "initialized; HEAD too. Vault's query overrides activecode, sealedcode, "
              "uninitcode, standbycode (200-599) and standbyok pick other codes.", None,
              response=HEALTH, errors=(400, 501, 503), params=_HEALTH_PARAMS),
    Operation("GET", "/v1/sys/seal-status", "Sealed or not, and why.", None,
              response={"type": "object"}, errors=()),
    Operation("POST", "/v1/sys/rotate-key", "New active barrier key; rewrap in background.",
              "sudo on sys/rotate-key", response={"type": "object", "properties": {
                  "term": {"type": "integer"}, "rewrap": _STR}}, errors=(403,)),
    Operation("GET", "/v1/sys/key-status", "Key terms and rewrap progress.",
              "read on sys/key-status", response={"type": "object"}, errors=(403,)),
    Operation("POST", "/v1/scans", "Start a leak scan in the server (known values included); "
              "rotate_leaked rotates each leaked current managed secret the token may rotate "
              "(rotate on rotation/<path>, checked per secret) that has a rotation policy; "
              "policies with on_leak: rotate are rotated by any scan.",
              "scan on scans", body={"type": "object", "properties": {
                  "kind": {"enum": ["image", "containers"]},
                  "targets": {"type": "array", "items": _STR, "maxItems": 100},
                  "all": {"type": "boolean"}, "rotate_leaked": {"type": "boolean"}},
                  "required": ["kind"],
                  "additionalProperties": False},
              response={"type": "object"}, status=202, errors=(400, 403)),
    Operation("GET", "/v1/scans", "Every known scan, newest first, without findings "
              "(finding_count instead): this process's and stored periodic container scans.",
              "scan on scans", response={"type": "object", "properties": {
                  "scans": {"type": "array", "items": {"type": "object"}}}}, errors=(403,)),
    Operation("GET", "/v1/scans/known-index", "Keyed fingerprints of managed values (no "
              "plaintext) for client-side scans.", "scan on scans/known-index",
              response={"type": "object"}, errors=(403,)),
    Operation("GET", "/v1/scans/{id}", "A scan's state, redacted findings and leak rotations "
              "(periodic scans: from storage, on any server).", "scan on scans",
              response={"type": "object"}, errors=(403, 404),
              params=({"name": "id", "in": "path", "required": True, "schema": _STR},)),
    Operation("GET", "/v1/rotation/policies", "Paths that have a rotation policy.",
              "list on rotation/", response={"type": "object", "properties": {
                  "keys": {"type": "array", "items": _STR}}}, errors=(403,)),
    Operation("GET", "/v1/rotation/policies/{path}", "A secret's rotation policy.",
              "read on rotation/{path}", response={"type": "object"}, errors=(400, 403, 404),
              params=(_PATH_PARAM,)),
    Operation("PUT", "/v1/rotation/policies/{path}", "Set a rotation policy (every or cron, "
              "jitter, window, grace, generator, target; see docs/rotation.md); 400 names "
              "each bad field. command/webhook targets name an operator-declared target; "
              "argv, url, env and the like are refused. 403 names the first capability "
              "missing for what the rotation touches; the caller is recorded as the "
              "authority every run is re-checked against.",
              "update on rotation/{path}; create/update on secrets/{path}; read on it for "
              "command/webhook; read on referenced secrets; update on the upstream path for "
              "vault-kv; sudo on rotation/targets/{name}", body=ROTATION_POLICY,
              response={"type": "object"}, errors=(400, 403), params=(_PATH_PARAM,)),
    Operation("DELETE", "/v1/rotation/policies/{path}", "Stop rotating a secret.",
              "delete on rotation/{path}", status=204, errors=(400, 403, 404),
              params=(_PATH_PARAM,)),
    Operation("POST", "/v1/rotation/rotate/{path}", "Rotate now (one attempt); 409 if a "
              "rotation of it is running.", "rotate on rotation/{path}",
              response={"type": "object"}, errors=(400, 403, 404, 409), params=(_PATH_PARAM,)),
    Operation("GET", "/v1/rotation/status/{path}", "Next run, last result, versions, grace "
              "and the version each consumer holds.", "read on rotation/{path}",
              response={"type": "object"}, errors=(400, 403, 404), params=(_PATH_PARAM,)),
    Operation("GET", "/v1/rotation/history/{path}", "Rotation runs, newest first (?limit).",
              "read on rotation/{path}", response={"type": "object"}, errors=(400, 403),
              params=(_PATH_PARAM,)),
    Operation("POST", "/v1/consumers", "Heartbeat: which secret versions a sidecar/plugin "
              "holds.", "update on consumers/{consumer}", body={"type": "object"}, status=204,
              errors=(400, 403)),
    Operation("GET", "/metrics", "Prometheus metrics (no secret data); OpenMetrics when "
              "Accept asks for application/openmetrics-text. 403 without a token that may "
              "read sys/metrics (metrics.require_token); 404 on the API port when "
              "metrics.listen serves them.", None, errors=(403, 404)),
    Operation("GET", "/v1/openapi.json", "This document.", None, errors=()),
)  # fmt: skip


def pipeline_errors(op: Operation) -> tuple[int, ...]:
    """Statuses the middleware pipeline can give any request to ``op``, whatever its handler.

    400 malformed request (parser error, bad query or body), 413 body over
    ``server.max_body_bytes``, 417 an ``Expect`` other than ``100-continue``; with a path
    parameter, 404 (e.g. an unknown ``:suffix`` matches no route); with a token, 403 (missing,
    bad or not allowed), 429 (auth throttle) and 503 (sealed, or the audit log unavailable).
    """
    statuses = [400, 413, 417]
    if "{" in op.path:
        statuses.append(404)
    if op.capability is not None:
        statuses += [403, 429, 503]
    return tuple(statuses)


def _schema(body: type[BaseModel] | _S) -> _S:
    if isinstance(body, dict):
        return body
    return body.model_json_schema(ref_template="#/components/schemas/{model}")


def _operation(op: Operation) -> _S:
    out: _S = {"summary": op.summary, "operationId": f"{op.method.lower()} {op.path}"}
    out["x-vaultside-capability"] = op.capability or "none (public)"
    if op.capability is not None:
        out["security"] = [{"bearer": []}, {"header": []}]
    else:
        out["security"] = []
    if op.params:
        out["parameters"] = list(op.params)
    if op.body is not None:
        out["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _schema(op.body)}},
        }
    ok: _S = {"description": "success"}
    if op.response is not None:
        ok["content"] = {"application/json": {"schema": op.response}}
    responses: dict[str, object] = {str(op.status): ok}
    for status in sorted(set(op.errors) | set(pipeline_errors(op))):
        desc = "not modified" if status == 304 else "error"
        entry: _S = {"description": desc}
        if status != 304:
            entry["content"] = {"application/json": {"schema": _ERROR}}
        responses[str(status)] = entry
    out["responses"] = responses
    return out


# Shared as components/schemas wherever an equal schema appears (vaultside.api.openapi_fit).
SHARED_SCHEMAS: dict[str, _S] = {
    "TokenInfo": TOKEN_INFO,
    "TokenAuth": TOKEN_AUTH,
    "Policy": POLICY,
    "PolicyWrite": POLICY_WRITE,
    "Health": HEALTH,
    "RotationPolicy": ROTATION_POLICY,
}


def build_document(operations: Sequence[Operation] = OPERATIONS) -> dict[str, object]:
    """The OpenAPI 3.1 document for ``operations``, fit for client generators."""
    paths: dict[str, dict[str, object]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    models_used = {
        op.body.__name__: _schema(op.body) for op in operations if isinstance(op.body, type)
    }
    return fit_for_generators(_core_document(paths), {**SHARED_SCHEMAS, **models_used})


def _core_document(paths: dict[str, dict[str, object]]) -> dict[str, object]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "vaultside",
            "version": __version__,
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "header": {"type": "apiKey", "in": "header", "name": "X-Vaultside-Token"},
            },
            "schemas": {"Error": _ERROR, "VersionMeta": VERSION_META, "SecretMeta": SECRET_META},
        },
    }


def document_bytes(operations: Sequence[Operation] = OPERATIONS) -> bytes:
    """``build_document`` serialised once (served as-is by ``/v1/openapi.json``)."""
    return json.dumps(build_document(operations), separators=(",", ":")).encode()


def render_markdown(doc: dict[str, object], operations: Sequence[Operation] = OPERATIONS) -> str:
    """A readable Markdown reference of ``doc`` (written to ``docs/api.md``)."""
    lines = [
        "# vaultside HTTP API reference",
        "",
        "Generated from `/v1/openapi.json` by `python -m vaultside.api.openapi --markdown`;",
        "do not edit by hand. Conventions (tokens, errors, paths) are in `api-contract.md`.",
        "",
        "| method | path | capability | success | errors | summary |",
        "|---|---|---|---|---|---|",
    ]
    paths = doc["paths"]
    assert isinstance(paths, dict)
    for path, methods in paths.items():
        for method, op in methods.items():
            codes = [c for c in op["responses"] if not c.startswith("2")]
            ok = next(c for c in op["responses"] if c.startswith("2"))
            lines.append(
                f"| {method.upper()} | `{path}` | {op['x-vaultside-capability']} | {ok} "
                f"| {', '.join(codes) or '-'} | {op['summary']} |"
            )
    lines += ["", "## Request bodies", ""]
    for op in operations:
        if op.body is not None:
            schema = json.dumps(_schema(op.body), indent=2, sort_keys=True)
            lines += [f"### {op.method} `{op.path}`", "", "```json", schema, "```", ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> None:
    """Print the document as JSON, or as Markdown with ``--markdown``."""
    parser = argparse.ArgumentParser(prog="python -m vaultside.api.openapi")
    parser.add_argument("--markdown", action="store_true", help="render docs/api.md")
    args = parser.parse_args(argv)
    from vaultside.api.app import all_operations

    operations = all_operations()
    doc = build_document(operations)
    if args.markdown:
        sys.stdout.write(render_markdown(doc, operations))
    else:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
