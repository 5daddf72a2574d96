"""The OpenAPI 3.1 document of the HTTP API, and its Markdown rendering for ``docs/api.md``.

This module only assembles: each route module (``vaultside.api.routes.ROUTE_MODULES``)
declares its ``OPERATIONS`` next to its handlers (``vaultside.api.spec``), with pydantic
request and response models. A model becomes one ``#/components/schemas/<Name>`` entry that
every operation using it refers to, so the schema documented is the serializer the route
sends with. A unit test compares the served document with the live router, so a route added
without documentation fails the build.

Regenerate the docs with ``python -m vaultside.api.openapi --markdown > docs/api.md``.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from vaultside import __version__
from vaultside.api.openapi_fit import SCHEMA_REF, fit_for_generators, operation_id, tag_of
from vaultside.api.openapi_markdown import render_markdown
from vaultside.api.responses import ErrorBody
from vaultside.api.routes import ROUTE_MODULES
from vaultside.api.spec import Json, Operation, Schema

__all__ = ["Operation", "all_operations", "build_document", "document_bytes", "render_markdown"]

_REF_TEMPLATE = SCHEMA_REF + "{model}"


def all_operations() -> tuple[Operation, ...]:
    """Every documented operation: each route module's ``OPERATIONS``, in registration order."""
    return tuple(op for module in ROUTE_MODULES for op in module.OPERATIONS)


class _Components:
    """Component schemas collected while operations are rendered: one entry per model."""

    def __init__(self) -> None:
        self.schemas: dict[str, Json] = {}

    def add(self, name: str, schema: Json) -> None:
        if self.schemas.setdefault(name, schema) != schema:
            raise ValueError(f"two different schemas are both named {name}")

    def ref(self, schema: Schema, mode: JsonSchemaMode) -> Json:
        """``schema`` as used by an operation: a ``$ref`` for a model, else the literal."""
        if isinstance(schema, dict):
            title = schema.get("title")
            if not isinstance(title, str):
                return schema
            self.add(title, schema)  # a literal JSON Schema with a title is a component too
            return {"$ref": SCHEMA_REF + title}
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            doc = schema.model_json_schema(by_alias=True, ref_template=_REF_TEMPLATE, mode=mode)
        else:
            adapter: TypeAdapter[Any] = TypeAdapter(schema)
            doc = adapter.json_schema(by_alias=True, ref_template=_REF_TEMPLATE, mode=mode)
        for name, definition in doc.pop("$defs", {}).items():
            self.add(name, definition)
        if not isinstance(schema, type):
            return doc  # a union of models: anyOf the models' $refs
        name = str(doc.get("title") or schema.__name__)
        self.add(name, doc)
        return {"$ref": SCHEMA_REF + name}


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


def _operation(op: Operation, components: _Components) -> Json:
    out: Json = {
        "summary": op.summary,
        "operationId": op.operation_id or operation_id(op.method, op.path),
        "tags": [op.tag or tag_of(op.path)],
        "x-vaultside-capability": op.capability or "none (public)",
        "security": [] if op.capability is None else [{"bearer": []}, {"header": []}],
    }
    if op.params:
        out["parameters"] = list(op.params)
    if op.body is not None:
        schema = components.ref(op.body, "validation")
        out["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
    ok: Json = {"description": "success"}
    if op.response is not None:
        schema = components.ref(op.response, "serialization")
        ok["content"] = {"application/json": {"schema": schema}}
    responses: dict[str, object] = {str(op.status): ok}
    error = {"$ref": SCHEMA_REF + "Error"}
    for status in sorted(set(op.errors) | set(pipeline_errors(op))):
        entry: Json = {"description": "not modified" if status == 304 else "error"}
        if status != 304:
            entry["content"] = {"application/json": {"schema": error}}
        responses[str(status)] = entry
    out["responses"] = responses
    return out


def build_document(operations: Sequence[Operation] | None = None) -> dict[str, object]:
    """The OpenAPI 3.1 document for ``operations`` (default: every route's), fit for client
    generators (``vaultside.api.openapi_fit``)."""
    components = _Components()
    components.ref(ErrorBody, "serialization")
    paths: dict[str, dict[str, object]] = {}
    for op in all_operations() if operations is None else operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, components)
    return fit_for_generators(_core_document(paths), components.schemas)


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
        },
    }


def document_bytes(operations: Sequence[Operation] | None = None) -> bytes:
    """``build_document`` serialised once (served as-is by ``/v1/openapi.json``)."""
    return json.dumps(build_document(operations), separators=(",", ":")).encode()


@functools.cache
def served_document() -> bytes:
    """The document of every route, built once per process (every app serves the same)."""
    return document_bytes()


def main(argv: list[str] | None = None) -> None:
    """Print the document as JSON, or as Markdown with ``--markdown``."""
    parser = argparse.ArgumentParser(prog="python -m vaultside.api.openapi")
    parser.add_argument("--markdown", action="store_true", help="render docs/api.md")
    args = parser.parse_args(argv)
    doc = build_document()
    if args.markdown:
        sys.stdout.write(render_markdown(doc))
    else:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
