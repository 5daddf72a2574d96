"""How a route module declares its operations: one ``Operation`` per route, next to its handler.

Each module in ``vaultside.api.routes`` keeps an ``OPERATIONS`` table (method, documented
path, summary, capability, handler, request/response models, statuses) and registers it
with ``add_operations``; ``vaultside.api.openapi`` only assembles the tables into the
OpenAPI document. So a route cannot be served without being documented, and the schema of
a response is the pydantic model that renders it (``json_response(model)``).

This module imports neither the routes nor the assembler (no cycle).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel

Json = dict[str, object]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# A request/response schema: a pydantic model (or a type pydantic can describe, e.g. a union
# of models), or a literal JSON Schema for a loosely typed document.
Schema = type[BaseModel] | Json | Any

STR: Json = {"type": "string"}


@dataclass(frozen=True)
class Operation:
    """One documented route: method, path template, who may call it, what goes in and out.

    ``path`` is the documented template (``/v1/secrets/{path}:versions``); ``add_operations``
    turns it into the router's pattern. ``operation_id`` defaults to one derived from method
    and path, ``tag`` to the first path segment (``vaultside.api.openapi_fit``).
    """

    method: str
    path: str
    summary: str
    capability: str | None  # "read on secrets/{path}", None for public routes
    handler: Handler | None = None
    body: Schema | None = None
    response: Schema | None = None
    status: int = 200
    errors: tuple[int, ...] = (400, 403)
    params: tuple[Json, ...] = field(default_factory=tuple)
    operation_id: str | None = None
    tag: str | None = None
    head: bool = False  # GET also answers HEAD


def path_param(name: str) -> Json:
    """A required string path parameter."""
    return {"name": name, "in": "path", "required": True, "schema": STR}


def query_param(name: str, schema: Json) -> Json:
    """An optional query parameter."""
    return {"name": name, "in": "query", "schema": schema}


_PARAM = re.compile(r"\{(\w+)\}")


def add_operations(
    app: web.Application, operations: Iterable[Operation], patterns: Mapping[str, str] = {}
) -> None:
    """Register each operation's handler, in table order (the router tries them in order).

    ``patterns`` gives a path parameter its regex (``{"path": "[^:]+"}``), so the documented
    ``{path}`` is served as ``{path:[^:]+}``.
    """
    for op in operations:
        if op.handler is None:
            raise ValueError(f"{op.method} {op.path} has no handler")

        def route(match: re.Match[str]) -> str:
            name = match.group(1)
            return f"{{{name}:{patterns[name]}}}" if name in patterns else match.group(0)

        path = _PARAM.sub(route, op.path)
        if op.method == "GET":
            app.router.add_get(path, op.handler, allow_head=op.head)
        else:
            app.router.add_route(op.method, path, op.handler)
