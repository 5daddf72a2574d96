"""The OpenAPI document covers exactly the live routes, and docs/api.md is current."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from vaultside.api.openapi import all_operations, build_document, render_markdown

from .conftest import Api

DOCS = Path(__file__).resolve().parents[3] / "docs" / "api.md"


def _live_routes(api: Api) -> set[tuple[str, str]]:
    app = api.client.app
    assert app is not None
    return {
        (route.method.upper(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }


async def test_document_paths_match_the_router(api: Api) -> None:
    resp = await api.client.get("/v1/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    assert doc["openapi"].startswith("3.1")
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    live = _live_routes(api)
    assert documented - live == set(), "documented but not served"
    assert live - documented == set(), "served but not documented"


def test_request_schemas_are_valid_json_schema() -> None:
    doc = build_document()
    for path, ops in doc["paths"].items():  # type: ignore[attr-defined]
        for method, op in ops.items():
            body = op.get("requestBody")
            if body:
                schema = body["content"]["application/json"]["schema"]
                jsonschema.Draft202012Validator.check_schema(schema), (method, path)


def test_secret_write_schema_rejects_unknown_fields() -> None:
    doc = build_document()
    schema = doc["paths"]["/v1/secrets/{path}"]["put"]["requestBody"]["content"][
        "application/json"
    ]["schema"]  # type: ignore[index]
    # The body is a shared component: resolve its $ref against the document's components.
    validator = jsonschema.Draft202012Validator({**schema, "components": doc["components"]})
    assert validator.is_valid({"data": {"a": "b"}})
    assert not validator.is_valid({"data": {"a": "b"}, "extra": 1})
    assert not validator.is_valid({"data": {"a": 1}})


def test_docs_api_md_is_generated_from_the_document() -> None:
    doc = json.loads(json.dumps(build_document(all_operations())))
    assert DOCS.read_text() == render_markdown(doc), (
        "regenerate: python -m vaultside.api.openapi --markdown > docs/api.md"
    )
