"""A tiny, safe template language for files built from several secrets.

Syntax: text with ``{{ <reference> | <filter> | ... }}`` expressions, e.g.
``postgres://{{ kv:app/db#user | urlquote }}:{{ kv:app/db#password | urlquote }}@db/app``.
An expression is only a secret reference followed by filters from a fixed table; there are no
variables, loops, attribute access, includes or calls, so a template can neither execute code
nor read files. Every ``{{`` starts an expression; an unclosed or malformed one is an error.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote

from vaultside.errors import InvalidRequestError
from vaultside.refs import parse_ref

FILTERS: dict[str, Callable[[str], str]] = {
    "urlquote": lambda v: quote(v, safe=""),
    "json": lambda v: json.dumps(v),
    "base64": lambda v: base64.b64encode(v.encode()).decode("ascii"),
    "trim": lambda v: v.strip(),
    "shellquote": shlex.quote,
    "upper": lambda v: v.upper(),
    "lower": lambda v: v.lower(),
}
_EXPR = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
MAX_TEMPLATE_CHARS = 16 * 1024


@dataclass(frozen=True, slots=True)
class _Expr:
    ref: str
    filters: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed template: literal text and expressions, in order."""

    parts: tuple[str | _Expr, ...]

    @property
    def refs(self) -> tuple[str, ...]:
        """Every reference the template uses, first occurrence order, normalised."""
        seen = dict.fromkeys(p.ref for p in self.parts if isinstance(p, _Expr))
        return tuple(seen)

    def render(self, values: Mapping[str, str]) -> str:
        """Substitute resolved values (keyed by normalised reference)."""
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = values[part.ref]
            for name in part.filters:
                value = FILTERS[name](value)
            out.append(value)
        return "".join(out)


def parse_template(text: str) -> Template:
    """Parse template text; ``InvalidRequestError`` naming the problem (never a value)."""
    if len(text) > MAX_TEMPLATE_CHARS:
        raise InvalidRequestError(f"template longer than {MAX_TEMPLATE_CHARS} characters")
    parts: list[str | _Expr] = []
    pos = 0
    for match in _EXPR.finditer(text):
        literal = text[pos : match.start()]
        if "}}" in literal:
            raise InvalidRequestError("template has '}}' without a matching '{{'")
        parts.append(literal)
        parts.append(_parse_expr(match.group(1)))
        pos = match.end()
    tail = text[pos:]
    if "{{" in tail:
        raise InvalidRequestError("template has '{{' without a matching '}}'")
    if "}}" in tail:
        raise InvalidRequestError("template has '}}' without a matching '{{'")
    parts.append(tail)
    return Template(tuple(p for p in parts if p != ""))


def _parse_expr(body: str) -> _Expr:
    pieces = [p.strip() for p in body.split("|")]
    ref_text = pieces[0]
    if not ref_text:
        raise InvalidRequestError("template expression '{{ }}' is empty")
    if "{{" in ref_text:
        raise InvalidRequestError("template expressions cannot be nested")
    ref = str(parse_ref(ref_text))
    for name in pieces[1:]:
        if name not in FILTERS:
            raise InvalidRequestError(
                f"unknown template filter {name[:40]!r}; known: {', '.join(sorted(FILTERS))}"
            )
    return _Expr(ref, tuple(pieces[1:]))
