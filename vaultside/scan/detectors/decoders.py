"""Decode what a format says is encoded, so the rules see the credential inside.

Each decoder names literal keywords, which join the rule detector's one Hyperscan pass:
where they do not occur, decoding costs nothing. At a keyword hit a decoder yields
``Encoded`` regions — the span of the encoded value in the chunk and the bytes it decodes
to. The rule detector runs its rules on the decoded bytes and reports what they find at the
encoded span, so a finding keeps its file and line.

- ``EscapedPem``: a PEM block inside a JSON / YAML / shell string with ``\\n`` escapes (GCP
  service-account files, Terraform state, any JSON config or env var).
- ``Base64Pem``: base64 of a PEM block (it starts ``LS0tLS1CRUdJTi``, "-----BEGIN"):
  kubeconfig ``client-key-data``, Helm values, env vars.
- ``Base64Pipe``: the literal fed to ``base64 -d`` / ``b64decode(...)`` in scripts and
  build history.
- ``KubernetesSecretData``: every ``data:`` entry of a Kubernetes Secret (YAML or JSON),
  decoded and scanned as ``name=value`` (multi-line values as they are); binary values of 16
  bytes or more are reported as key material.
- ``PercentEncoded``: a URL whose ``://`` is percent-encoded (``%3A%2F%2F``).
"""

from __future__ import annotations

import base64
import binascii
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

MIN_BINARY_SECRET = 16  # bytes of non-text data in a Secret that count as key material
_MAX_BACK = 4096  # how far back from a keyword an encoded value may start (minified lines)


@dataclass(frozen=True, slots=True)
class Encoded:
    """An encoded value at ``[start, end)`` of the chunk and what it decodes to.

    ``opaque``: the decoded bytes are binary key material; the encoded value is the secret.
    """

    start: int
    end: int
    text: bytes
    how: str
    opaque: bool = False


class Decoder(Protocol):
    """Finds encoded values near a keyword hit; pure, no I/O."""

    keywords: tuple[bytes, ...]

    def regions(self, data: bytes, pos: int) -> Iterator[Encoded]:
        """Encoded values around the keyword hit at ``pos``."""
        ...


def _line_bounds(data: bytes, pos: int) -> tuple[int, int]:
    lo = data.rfind(b"\n", 0, pos) + 1
    hi = data.find(b"\n", pos)
    return lo, hi if hi >= 0 else len(data)


_ESCAPE = re.compile(rb"\\(u[0-9a-fA-F]{4}|.)")
_SIMPLE_ESCAPES = {b"n": b"\n", b"r": b"", b"t": b"\t"}


def unescape(raw: bytes) -> bytes:
    """JSON / C-style string escapes (``\\n``, ``\\"``, ``\\u003d``) resolved."""

    def one(m: re.Match[bytes]) -> bytes:
        e = m.group(1)
        if len(e) == 5:
            return chr(int(e[1:], 16)).encode("utf-8", "replace")
        return _SIMPLE_ESCAPES.get(e, e)

    return _ESCAPE.sub(one, raw)


def _printable(raw: bytes) -> str | None:
    """``raw`` as text if it is UTF-8 text (tabs and newlines allowed), else None."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if text and all(c.isprintable() or c in "\t\r\n" for c in text) else None


def b64decode(token: bytes) -> bytes | None:
    """Standard or URL-safe base64 (padding optional); None if it is not base64."""
    token = token.rstrip(b"=")
    if len(token) % 4 == 1:
        return None
    padded = token + b"=" * (-len(token) % 4)
    try:
        if b"-" in token or b"_" in token:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None


class EscapedPem:
    """A PEM block written as one string with ``\\n`` escapes."""

    keywords: tuple[bytes, ...] = (b"private key-----\\n", b"private key-----\\r\\n")

    def regions(self, data: bytes, pos: int) -> Iterator[Encoded]:
        """The string (quoted, or from ``-----BEGIN`` on) holding the escaped block."""
        lo, hi = _line_bounds(data, pos)
        begin = data.rfind(b"-----BEGIN", lo, pos)
        if begin < 0:
            return
        quote = data[begin - 1 : begin] if begin > lo else b""
        if quote in (b'"', b"'"):
            end = begin
            while True:
                end = data.find(quote, end, hi)
                if end < 0:
                    end = hi
                    break
                if data[end - 1 : end] != b"\\":
                    break
                end += 1
        else:
            tail = data.find(b"-----END", pos, hi)
            if tail < 0:
                return
            close = data.find(b"-----", tail + 8, hi)
            end = close + 5 if close >= 0 else hi
        yield Encoded(begin, end, unescape(data[begin:end]), "escaped")


_B64_RUN = re.compile(rb"[A-Za-z0-9+/=_\-]+")


def _run_start(data: bytes, lo: int, pos: int, run: re.Pattern[bytes]) -> int:
    """Where the run of ``run`` characters that ends at ``pos`` starts (``_MAX_BACK`` at most)."""
    start = pos
    floor = max(lo, pos - _MAX_BACK)
    while start > floor and run.fullmatch(data[start - 1 : start]):
        start -= 1
    return start


def _token_at(data: bytes, pos: int) -> tuple[int, int]:
    """The maximal run of base64 characters around ``pos``."""
    lo, hi = _line_bounds(data, pos)
    start = _run_start(data, lo, pos, _B64_RUN)
    m = _B64_RUN.match(data, pos, hi)
    return start, m.end() if m else pos


class Base64Pem:
    """Base64 of a PEM block: the encoding says what it is (``-----BEGIN`` → ``LS0tLS1CRUdJTi``)."""

    keywords: tuple[bytes, ...] = (b"ls0tls1crudjti",)

    def regions(self, data: bytes, pos: int) -> Iterator[Encoded]:
        """The base64 token that starts with the encoded ``-----BEGIN``."""
        start, end = _token_at(data, pos)
        raw = b64decode(data[start:end])
        if raw is not None and raw.startswith(b"-----BEGIN"):
            yield Encoded(start, end, raw, "base64")


_PIPED = re.compile(rb"""["']?([A-Za-z0-9+/]{16,}={0,2})["']?""")


class Base64Pipe:
    """Literals decoded by the script itself: ``echo X | base64 -d``, ``b64decode("X")``."""

    keywords: tuple[bytes, ...] = (b"base64 -d", b"base64 --decode", b"base64 -D", b"b64decode(")

    def regions(self, data: bytes, pos: int) -> Iterator[Encoded]:
        """Every base64 literal of 16+ characters on the line that decodes to text."""
        lo, hi = _line_bounds(data, pos)
        for m in _PIPED.finditer(data, lo, hi):
            raw = b64decode(m.group(1))
            if raw is not None and _printable(raw) is not None:
                yield Encoded(m.start(1), m.end(1), raw, "base64")


_YAML_DATA = re.compile(rb"^data:[ \t]*\r?$", re.MULTILINE)
_YAML_ENTRY = re.compile(
    rb"""^([ \t]+)([\w.\-]+):[ \t]*["']?([A-Za-z0-9+/]+=*)["']?[ \t]*\r?$""", re.MULTILINE
)
_JSON_DATA = re.compile(rb'"data"\s*:\s*\{([^{}]*)\}')
_JSON_ENTRY = re.compile(rb'"([\w.\-]+)"\s*:\s*"([A-Za-z0-9+/]+=*)"')


class KubernetesSecretData:
    """The base64 ``data:`` entries of a Kubernetes Secret (a manifest, ``kubectl get -o``)."""

    keywords: tuple[bytes, ...] = (b"kind: secret", b'"kind": "secret"', b'"kind":"secret"')

    def regions(self, data: bytes, pos: int) -> Iterator[Encoded]:
        """Each entry, decoded; the document is the YAML one (``---``) around ``pos``."""
        lo = data.rfind(b"\n---", 0, pos) + 1
        hi = data.find(b"\n---", pos)
        hi = hi if hi >= 0 else len(data)
        entries: list[tuple[bytes, int, int]] = []
        for block in _YAML_DATA.finditer(data, lo, hi):
            at = block.end() + 1
            while at < hi:
                eol = data.find(b"\n", at, hi)
                eol = eol if eol >= 0 else hi
                m = _YAML_ENTRY.match(data, at, eol)
                if m is None:
                    if data[at:eol].strip() and not data[at : at + 1].isspace():
                        break  # back at the top level
                else:
                    entries.append((m.group(2), m.start(3), m.end(3)))
                at = eol + 1
        for block in _JSON_DATA.finditer(data, lo, hi):
            for m in _JSON_ENTRY.finditer(data, block.start(1), block.end(1)):
                entries.append((m.group(1), m.start(2), m.end(2)))
        for name, start, end in entries:
            raw = b64decode(data[start:end])
            if raw is None:
                continue
            text = _printable(raw)
            if text is None:
                if len(raw) >= MIN_BINARY_SECRET:
                    yield Encoded(start, end, raw, "base64", opaque=True)
            elif "\n" in text.strip():
                yield Encoded(start, end, raw, "base64")
            else:
                yield Encoded(start, end, name + b"=" + raw, "base64")


_PERCENT_RUN = re.compile(rb"[A-Za-z0-9%._~+\-!*'():@/=&?;,$]+")


class PercentEncoded:
    """A percent-encoded URL (``postgres%3A%2F%2Fapp%3Apw%40db``): in query strings, env."""

    keywords: tuple[bytes, ...] = (b"%3a%2f%2f",)

    def regions(self, data: bytes, pos: int) -> Iterator[Encoded]:
        """The encoded run around the ``%3A%2F%2F``, decoded."""
        lo, hi = _line_bounds(data, pos)
        start = _run_start(data, lo, pos, _PERCENT_RUN)
        if data[start : start + 1] in (b"=", b"&", b"?"):
            start += 1
        m = _PERCENT_RUN.match(data, pos, hi)
        end = m.end() if m else pos
        amp = data.find(b"&", pos, end)
        end = amp if amp >= 0 else end
        yield Encoded(start, end, urllib.parse.unquote_to_bytes(data[start:end]), "percent")


def default_decoders() -> tuple[Decoder, ...]:
    """Every built-in decoder."""
    return (EscapedPem(), Base64Pem(), Base64Pipe(), KubernetesSecretData(), PercentEncoded())
