"""The Markdown rendering of the OpenAPI document (``docs/api.md``), from the document alone.

One table of operations (with the request and response schema of each), then one section per
component schema: a table of its fields (type, required, rules), or its JSON Schema when a
field nests an object of its own (e.g. the rotation policy's ``target``).
"""

from __future__ import annotations

import json
from typing import Any

from vaultside.api.openapi_fit import SCHEMA_REF

_RULES = (
    "minLength", "maxLength", "pattern", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "minItems", "maxItems", "minProperties", "maxProperties", "default",
)  # fmt: skip


def _link(name: str) -> str:
    return f"[{name}](#{name.lower()})"


def type_of(schema: Any) -> str:
    """A short type expression for ``schema`` (``[VersionMeta]``, ``{string: string}``...)."""
    if not isinstance(schema, dict):
        return "any"
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith(SCHEMA_REF):
        return _link(ref.removeprefix(SCHEMA_REF))
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " \\| ".join(type_of(s) for s in schema[key])
    if "const" in schema:
        return json.dumps(schema["const"])
    if "enum" in schema:
        return " \\| ".join(json.dumps(v) for v in schema["enum"])
    kind = schema.get("type", "any")
    if isinstance(kind, list):
        return " \\| ".join(type_of({**schema, "type": k}) for k in kind)
    if kind == "array":
        return f"[{type_of(schema.get('items'))}]"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"{{string: {type_of(schema['additionalProperties'])}}}"
    fmt = schema.get("format")
    return f"{kind} ({fmt})" if fmt else str(kind)


def _nests_an_object(node: Any) -> bool:
    if isinstance(node, dict):
        if "properties" in node or "oneOf" in node:
            return True
        return any(_nests_an_object(v) for v in node.values())
    if isinstance(node, list):
        return any(_nests_an_object(v) for v in node)
    return False


def _without_titles(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_titles(v) for k, v in node.items() if k != "title"}
    if isinstance(node, list):
        return [_without_titles(v) for v in node]
    return node


def _bounds(schema: Any, prefix: str = "") -> list[str]:
    """The rules of ``schema``, of its items and of each ``anyOf`` member (``null`` aside)."""
    if not isinstance(schema, dict):
        return []
    found = [f"{prefix}{k} {json.dumps(schema[k])}" for k in _RULES if k in schema]
    found += _bounds(schema.get("items"), prefix + "items: ")
    for member in schema.get("anyOf") or ():
        found += _bounds(member, prefix)
    return found


def _rules(schema: dict[str, Any]) -> str:
    text = ", ".join(_bounds(schema))
    description = schema.get("description")
    if isinstance(description, str):
        text = f"{description}; {text}" if text else description
    return text.replace("|", "\\|").replace("\n", " ")


def _schema_section(name: str, schema: dict[str, Any]) -> list[str]:
    lines = [f"### {name}", ""]
    description = schema.get("description")
    if isinstance(description, str):
        lines += [description.split("\n\n", 1)[0].replace("\n", " "), ""]
    properties: dict[str, Any] = schema.get("properties") or {}
    if not properties or any(_nests_an_object(p) for p in properties.values()):
        text = json.dumps(_without_titles(schema), indent=2, sort_keys=True)
        return [*lines, "```json", text, "```", ""]
    required = set(schema.get("required") or ())
    closed = " (no other fields)" if schema.get("additionalProperties") is False else ""
    lines += [f"| field{closed} | type | required | rules |", "|---|---|---|---|"]
    for field, prop in properties.items():
        must = "yes" if field in required else ""
        lines.append(f"| `{field}` | {type_of(prop)} | {must} | {_rules(prop)} |")
    return [*lines, ""]


def _body(op: dict[str, Any], status: str | None = None) -> str:
    if status is None:
        content = op.get("requestBody", {}).get("content", {})
    else:
        content = op["responses"][status].get("content", {})
    schema = content.get("application/json", {}).get("schema")
    return "-" if schema is None else type_of(schema)


def render_markdown(doc: dict[str, Any]) -> str:
    """A readable Markdown reference of ``doc`` (written to ``docs/api.md``)."""
    lines = [
        "# vaultside HTTP API reference",
        "",
        "Generated from `/v1/openapi.json` by `python -m vaultside.api.openapi --markdown`;",
        "do not edit by hand. Conventions (tokens, errors, paths) are in `api-contract.md`.",
        "Every error status answers an [Error](#error) body.",
        "",
        "| method | path | operationId | capability | request | success | response | errors "
        "| summary |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            codes = [c for c in op["responses"] if not c.startswith("2")]
            ok = next(c for c in op["responses"] if c.startswith("2"))
            lines.append(
                f"| {method.upper()} | `{path}` | `{op['operationId']}` "
                f"| {op['x-vaultside-capability']} | {_body(op)} | {ok} | {_body(op, ok)} "
                f"| {', '.join(codes) or '-'} | {op['summary']} |"
            )
    lines += ["", "## Schemas", ""]
    for name, schema in doc["components"]["schemas"].items():
        lines += _schema_section(name, schema)
    return "\n".join(lines).rstrip() + "\n"
