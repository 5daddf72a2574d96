"""Reading request bodies and query parameters into validated values; writing JSON cheaply.

Every parse error here is an ``InvalidRequestError`` (400) whose message names the field or
parameter and the rule, never the client's input.
"""

from __future__ import annotations

import json
import re
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from vaultside.errors import InvalidRequestError
from vaultside.kv.paths import validate_path
from vaultside.numeric import parse_int

M = TypeVar("M", bound=BaseModel)

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_MAX_MESSAGES = 10
# A ``\uD800``-``\uDFFF`` escape: JSON allows it alone, UTF-8 (and so storage) cannot hold it.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def dumps(obj: object) -> bytes:
    """Compact UTF-8 JSON."""
    return _dumps(obj).encode()


def json_response(obj: object, status: int = 200) -> web.Response:
    """A JSON response built without aiohttp's slower ``json_response`` path.

    A pydantic model (a documented response, ``vaultside.api.responses``) is rendered by its
    own serializer, by alias: the bytes sent are the shape its schema documents.
    """
    body = obj.model_dump_json(by_alias=True).encode() if isinstance(obj, BaseModel) else dumps(obj)
    return web.Response(body=body, status=status, content_type="application/json")


def no_content() -> web.Response:
    """An empty 204."""
    return web.Response(status=204)


def query_int(text: str, name: str, low: int, high: int) -> int:
    """Query parameter ``name`` as an ASCII integer in ``[low, high]``, else 400."""
    try:
        return parse_int(text, low, high)
    except ValueError:
        raise InvalidRequestError(
            f"query parameter '{name}' must be an integer from {low} to {high}"
        ) from None


def secret_path(request: web.Request) -> str:
    """The ``{path}`` of the matched route, validated as a secret path (400 if not)."""
    return validate_path(request.match_info["path"])


def _has_lone_surrogate(obj: object) -> bool:
    """True if any string (key or value) in the decoded JSON cannot be encoded as UTF-8."""
    try:
        _dumps(obj).encode()
    except UnicodeEncodeError:
        return True
    return False


def _describe(err: ErrorDetails) -> str:
    loc = ".".join(str(p)[:64] for p in err["loc"]) or "body"
    if err["type"] == "extra_forbidden":
        return f"{loc}: unknown field"
    if err["type"] == "missing":
        return f"{loc}: field required"
    # SECURITY: pydantic's ``msg`` never echoes the input; ``input`` is deliberately dropped.
    return f"{loc}: {err['msg']}"


def validation_error(exc: ValidationError, what: str = "request body") -> InvalidRequestError:
    """An ``InvalidRequestError`` naming each offending field (never its value)."""
    problems = [_describe(e) for e in exc.errors()[:_MAX_MESSAGES]]
    return InvalidRequestError(f"invalid {what}", details=problems)


async def read_json(request: web.Request, *, optional: bool = False) -> object:
    """The parsed JSON body; ``{}`` for an empty body when ``optional``.

    Raises ``InvalidRequestError`` for malformed JSON and ``PayloadTooLargeError`` (through
    aiohttp's ``client_max_size``, mapped by the error middleware) for an oversized body.
    """
    raw = await request.read()
    if not raw.strip():
        if optional:
            return {}
        raise InvalidRequestError("request body is empty; a JSON object is required")
    try:
        obj = json.loads(raw)
    except RecursionError:
        raise InvalidRequestError("request body is nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        # SECURITY: the decoder's message quotes only a position, not the body.
        pos = getattr(exc, "pos", None)
        where = f" at byte {pos}" if pos is not None else ""
        raise InvalidRequestError(f"request body is not valid JSON{where}") from None
    # SECURITY: a lone surrogate would be stored (token metadata, secret data) and break every
    # later read of that record; only bodies that escape a surrogate pay for the full check.
    if _SURROGATE_ESCAPE.search(raw) is not None and _has_lone_surrogate(obj):
        raise InvalidRequestError("request body has a lone UTF-16 surrogate in a string")
    return obj


async def read_model(request: web.Request, model: type[M], *, optional: bool = False) -> M:
    """The body parsed and validated as ``model`` (unknown fields and wrong types → 400)."""
    obj = await read_json(request, optional=optional)
    if not isinstance(obj, dict):
        raise InvalidRequestError("request body must be a JSON object")
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        raise validation_error(exc) from None
