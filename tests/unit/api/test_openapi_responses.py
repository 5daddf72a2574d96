"""What the routes send matches what the document says they send, status by status.

A walk through the API (secrets, resolve, tokens, policies, sys, scans, rotation, JWT roles,
errors) validates every JSON body against the schema the document gives for its operation
and status, with the document's components (so a ``$ref`` resolves to the pydantic model's
schema). ``CALLS`` is plain data so the same walk can be replayed against another build to
compare the bytes on the wire.
"""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema

from vaultside.api.openapi import build_document

from .conftest import Api

# (method, path, JSON body or None); "{accessor}" / "{token}" are the created token's.
CALLS: list[tuple[str, str, Any]] = [
    ("PUT", "/v1/secrets/app/db", {"data": {"password": "p-1", "user": "u"}}),
    ("GET", "/v1/secrets/app/db", None),
    ("GET", "/v1/secrets/app/db?version=1", None),
    ("GET", "/v1/secrets?list=true", None),
    ("GET", "/v1/secrets/app?list=true", None),
    ("POST", "/v1/secrets/app/db", {"data": {"password": "p-2"}, "cas": 1, "type": "password"}),
    ("GET", "/v1/secrets/app/db:versions", None),
    ("GET", "/v1/secrets/app/db:metadata", None),
    ("PUT", "/v1/secrets/app/db:metadata", {"max_versions": 5, "custom_metadata": {"o": "x"}}),
    ("POST", "/v1/secrets/app/db:delete", {"versions": [1]}),
    ("POST", "/v1/secrets/app/db:undelete", {"versions": [1]}),
    ("POST", "/v1/secrets/app/db:destroy", {"versions": [1]}),
    ("GET", "/v1/secrets/app/db:metadata", None),
    ("PUT", "/v1/secrets/app/db", {"data": {"password": "p-3"}, "cas": 1}),
    ("GET", "/v1/secrets/app/nothing", None),
    ("GET", "/v1/secrets/app/db?version=x", None),
    ("POST", "/v1/resolve", {"refs": ["kv:app/db#password", "kv:app/db#user"]}),
    ("POST", "/v1/auth/token/create", {"policies": ["default"], "ttl": "1h", "meta": {"a": "b"}}),
    ("GET", "/v1/auth/token/lookup-self", None),
    ("POST", "/v1/auth/token/lookup", {"accessor": "{accessor}"}),
    ("POST", "/v1/auth/token/lookup", {"token": "{token}"}),
    ("POST", "/v1/auth/token/renew", {"accessor": "{accessor}", "increment": 60}),
    ("POST", "/v1/auth/token/renew-self", {}),
    ("POST", "/v1/auth/token/revoke", {"accessor": "{accessor}"}),
    ("PUT", "/v1/sys/policies/p1", {"rules": [{"path": "secrets/a/*", "capabilities": ["read"]}]}),
    ("GET", "/v1/sys/policies", None),
    ("GET", "/v1/sys/policies/p1", None),
    ("DELETE", "/v1/sys/policies/p1", None),
    ("GET", "/v1/sys/policies/p1", None),
    ("GET", "/v1/sys/health", None),
    ("GET", "/v1/sys/seal-status", None),
    ("GET", "/v1/sys/key-status", None),
    ("GET", "/v1/sys/leaders", None),
    ("POST", "/v1/sys/rotate-key", None),
    ("GET", "/v1/scans", None),
    ("GET", "/v1/scans/known-index", None),
    ("GET", "/v1/scans/none", None),
    ("GET", "/v1/rotation/policies", None),
    ("GET", "/v1/auth/jwt/roles", None),
    ("GET", "/v1/broker/b/m/p", None),
    ("DELETE", "/v1/secrets/app/db", None),
    ("DELETE", "/v1/secrets/app/db:metadata", None),
]


def template_of(doc: dict[str, Any], method: str, path: str) -> str | None:
    """The documented path template that ``path`` (query stripped) falls under."""
    path = path.split("?", 1)[0]
    for template in doc["paths"]:
        if method.lower() not in doc["paths"][template]:
            continue
        pattern = re.escape(template).replace(r"\{path\}", "[^:]+")
        pattern = re.sub(r"\\\{\w+\\\}", "[^/]+", pattern)
        if re.fullmatch(pattern, path):
            return str(template)
    return None


async def walk(api: Api) -> list[tuple[str, str, int, bytes]]:
    """Every call of ``CALLS`` as the root token: (method, path, status, body bytes)."""
    filled: dict[str, str] = {}
    out = []
    for method, path, body in CALLS:
        text = json.dumps(body) if body is not None else None
        for key, value in filled.items():
            text = text.replace("{" + key + "}", value) if text else text
        resp = await api.client.request(
            method,
            path,
            data=text,
            headers={**api.auth(), "Content-Type": "application/json"},
        )
        raw = await resp.read()
        if path == "/v1/auth/token/create" and resp.status == 200:
            created = json.loads(raw)["auth"]
            filled = {"accessor": created["accessor"], "token": created["token"]}
        out.append((method, path, resp.status, raw))
    return out


async def test_every_response_matches_its_documented_schema(api: Api) -> None:
    doc = build_document()
    components = {"components": doc["components"]}
    seen: set[int] = set()
    for method, path, status, raw in await walk(api):
        template = template_of(doc, method, path)
        assert template is not None, (method, path)
        responses = doc["paths"][template][method.lower()]["responses"]
        assert str(status) in responses, (method, path, status, raw[:300])
        entry = responses[str(status)]
        if "$ref" in entry:
            entry = doc["components"]["responses"][entry["$ref"].rsplit("/", 1)[1]]
        content = entry.get("content")
        seen.add(status)
        if not raw:
            assert content is None or status == 204, (method, path, status)
            continue
        assert content is not None, (method, path, status, raw[:300])
        schema = content["application/json"]["schema"]
        body = json.loads(raw)
        validator = jsonschema.Draft202012Validator({**schema, **components})
        errors = [e.message for e in validator.iter_errors(body)]
        assert errors == [], (method, path, status, errors)
    assert {200, 204, 400, 404} <= seen
