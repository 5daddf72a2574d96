"""One shape per thing: ids are url-safe and unique, a schema used twice is one component,
secret metadata has one definition, and the document is assembled without the app."""

from __future__ import annotations

import ast
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from vaultside.api import openapi
from vaultside.api.openapi import Operation, all_operations, build_document
from vaultside.kv.models import SecretMeta

_URL_SAFE = re.compile(r"[A-Za-z0-9_-]+")
_REF = "#/components/schemas/"


def _document() -> dict[str, Any]:
    return json.loads(json.dumps(build_document()))


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, ops in doc["paths"].items() for m, op in ops.items()]


def _bodies(op: dict[str, Any]) -> list[dict[str, Any]]:
    """The request and response body schemas of one operation."""
    found = []
    request = op.get("requestBody", {}).get("content", {}).get("application/json")
    if request:
        found.append(request["schema"])
    for response in op["responses"].values():
        content = response.get("content", {}).get("application/json")
        if content:
            found.append(content["schema"])
    return found


def _inline_objects(node: Any, out: list[str]) -> None:
    """Every inline object schema with properties (not a $ref) under ``node``."""
    if isinstance(node, dict):
        if "properties" in node:
            out.append(json.dumps(node, sort_keys=True))
        for value in node.values():
            _inline_objects(value, out)
    elif isinstance(node, list):
        for value in node:
            _inline_objects(value, out)


def test_every_operation_id_is_url_safe_and_unique() -> None:
    ids = [op["operationId"] for _, _, op in _operations(_document())]
    assert len(ids) == len(all_operations())
    assert [i for i in ids if not _URL_SAFE.fullmatch(i)] == []
    assert [i for i, n in Counter(ids).items() if n > 1] == []


def test_a_declared_id_is_kept_and_an_unsafe_one_fails_the_build() -> None:
    ok = Operation("GET", "/v1/sys/example-a", "a", None, operation_id="readExample_a-1")
    doc = build_document((ok,))
    assert doc["paths"]["/v1/sys/example-a"]["get"]["operationId"] == "readExample_a-1"  # type: ignore[index]
    bad = Operation("GET", "/v1/sys/example-b", "b", None, operation_id="read example/b")
    with pytest.raises(ValueError, match="not url-safe"):
        build_document((bad,))


def test_every_schema_used_more_than_once_is_a_ref() -> None:
    doc = _document()
    inline: list[str] = []
    refs: Counter[str] = Counter()
    for _, _, op in _operations(doc):
        for schema in _bodies(op):
            _inline_objects(schema, inline)
            for ref in re.findall(r'"\$ref": "([^"]+)"', json.dumps(schema)):
                refs[ref] += 1
    repeated = [s for s, n in Counter(inline).items() if n > 1]
    assert repeated == [], "an inline schema appears more than once: make it a model"
    # The shared ones the issue names: secret metadata, tokens, key lists, the error body
    # (every error status is a shared response whose body is the Error component).
    for name in ("SecretMeta", "TokenAuth", "TokenLookup", "KeyList"):
        assert refs[_REF + name] >= 2, name
    for response in doc["components"]["responses"].values():
        if "content" in response:
            assert response["content"]["application/json"]["schema"] == {"$ref": _REF + "Error"}
    assert doc["components"]["schemas"]["Error"]["required"] == ["errors", "code", "request_id"]
    assert "code" in doc["components"]["schemas"]["Error"]["properties"]
    # Every pydantic model an operation declares is a named component, referred to by $ref.
    for op in all_operations():
        for declared in (op.body, op.response):
            if isinstance(declared, type):
                assert f"{_REF}{declared.__name__}" in json.dumps(doc["paths"]), declared
    assert set(doc["components"]["schemas"]) >= {"SecretMeta", "VersionMeta", "Lease"}


def test_secret_metadata_has_one_definition() -> None:
    doc = _document()
    adapter: TypeAdapter[SecretMeta] = TypeAdapter(SecretMeta)
    schema = adapter.json_schema(mode="serialization", by_alias=True, ref_template=_REF + "{model}")
    schema.pop("$defs")
    assert doc["components"]["schemas"]["SecretMeta"] == schema
    assert not hasattr(openapi, "SECRET_META")


def test_the_assembler_does_not_import_the_app() -> None:
    source = Path(openapi.__file__).read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    assert "vaultside.api.app" not in imported
