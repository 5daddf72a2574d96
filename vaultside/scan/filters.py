"""False-positive filters: placeholders, documented examples, references, hashes, UUIDs,
lockfile integrity strings, public keys and certificates, code identifiers.

Format-specific rules (a ``ghp_`` token, an ``AKIA`` key id) only go through the placeholder
and reference filters; entropy-tested ``generic`` rules go through all of them.
"""

from __future__ import annotations

import base64
import binascii
import posixpath
import re
from collections.abc import Sequence

from vaultside.scan.base import Candidate, Filter, Location

_PLACEHOLDER_PARTS = (
    "example",
    "xxxx",
    "changeme",
    "change_me",
    "change-me",
    "your_",
    "your-",
    "yourkey",
    "placeholder",
    "dummy",
    "redacted",
    "sample",
    "****",
    "....",
    "<",
    ">",
    "insert",
    "replace_",
    "replaceme",
    "todo",
    "fixme",
    "foobar",
    "notreal",
    "not_real",
    "fake",
    "0000000000",
    "1234567890",
    "12345",
    "xyz",
    "abcdefgh",
)
_PLACEHOLDER_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pass",
        "secret",
        "token",
        "apikey",
        "api_key",
        "null",
        "none",
        "nil",
        "true",
        "false",
        "undefined",
        "empty",
        "string",
        "required",
        "optional",
        "default",
    }
)
# Values published in vendor and RFC documentation as examples (not credentials of anyone).
_DOCUMENTED_EXAMPLES = frozenset(
    {
        "czZCaGRSa3F0MzpnWDFmQmF0M2JW",  # RFC 6749 section 2.3.1 client credentials
        "QWxhZGRpbjpvcGVuIHNlc2FtZQ==",  # RFC 7617 Aladdin:open sesame
        "dXNlcjpwYXNzd29yZA==",  # user:password
    }
)
_REFERENCE = re.compile(
    r"^(?:\$\{?[A-Za-z_]|\$\(|%\(|%[A-Za-z_]+%|\{\{|\{%|#\{|<%|@[A-Za-z_]+@|"
    r"(?:process\.env|os\.environ|os\.getenv|env|secrets|vars|ENV)[.\[(]|"
    r"(?:kv|vault|file|env):[A-Za-z0-9_./-]+)"
)
_HEX_HASH = re.compile(
    r"^(?:[a-fA-F0-9]{32}|[a-fA-F0-9]{40}|[a-fA-F0-9]{56}|[a-fA-F0-9]{64}|"
    r"[a-fA-F0-9]{96}|[a-fA-F0-9]{128})$"
)
_PREFIXED_HASH = re.compile(r"^(?:sha(?:1|224|256|384|512)|md5|blake2b?)[-:=]", re.IGNORECASE)
_CRYPT_HASH = re.compile(r"^\$(?:2[abxy]?|5|6|argon2(?:id|i|d)|scrypt|pbkdf2[-_a-z0-9]*)\$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z_$]*(?:[.\-][A-Za-z_$]+)*(?:\(\))?$")
# ``exports2.STRICT_TOKEN.concat``, ``line_js_1.tokenize``: dotted names are code, digits or not
_DOTTED_NAME = re.compile(r"^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+(?:\(\))?$")
_CONSTANT_NAME = re.compile(r"^[A-Z][A-Z0-9_]*(?:TOKEN|SECRET|PASSWORD|PASSWD|PASS|KEY)[A-Z0-9_]*$")
_WORD = re.compile(r"[A-Z]?[a-z]{3,}")
_QUERY = re.compile(r"&\w+=")
_B64_TEXT = re.compile(r"^[A-Za-z0-9+/]{8,}={0,2}$")
_PUBLIC_MARKERS = (
    b"BEGIN CERTIFICATE",
    b"PUBLIC KEY",
    b"ssh-rsa ",
    b"ssh-ed25519 ",
    b"ecdsa-sha2-",
    b"public_key",
    b"publickey",
    b"public-key",
    b"publishable",
    b"pubkey",
)
_PUBLIC_VALUE_PREFIXES = ("AAAAB3NzaC1", "AAAAC3NzaC1", "AAAAE2VjZHNh", "MFkwEwYHKoZIzj0C", "MIIB")
LOCKFILES = frozenset(
    {
        "package-lock.json",
        "npm-shrinkwrap.json",
        "yarn.lock",
        "pnpm-lock.yaml",
        "poetry.lock",
        "pipfile.lock",
        "uv.lock",
        "pdm.lock",
        "cargo.lock",
        "go.sum",
        "composer.lock",
        "gemfile.lock",
        "packages.lock.json",
        "flake.lock",
    }
)


def _line_of(data: bytes, start: int) -> bytes:
    lo = data.rfind(b"\n", max(0, start - 1024), start) + 1 or max(0, start - 1024)
    hi = data.find(b"\n", start, start + 4096)
    return data[lo : hi if hi >= 0 else min(len(data), start + 4096)]


def _decodes_to_placeholder(value: str) -> bool:
    """Base64 of prose such as ``not my real password`` (documentation, not a credential)."""
    if len(value) % 4 or not _B64_TEXT.match(value):
        return False
    try:
        text = base64.b64decode(value, validate=True).decode("ascii").lower()
    except (binascii.Error, UnicodeDecodeError):
        return False
    if not text.isprintable() or " " not in text:
        return False
    return any(p in text for p in (*_PLACEHOLDER_PARTS, "password", "secret", "real", "token"))


class PlaceholderFilter:
    """Placeholders, documentation examples and repeated characters."""

    def rejects(self, cand: Candidate, data: bytes, location: Location) -> bool:
        """True for ``changeme``, ``<your-key>``, ``...EXAMPLE``, ``xxxxxxxx`` and the like."""
        value = cand.secret.reveal()
        low = value.lower()
        if value in _DOCUMENTED_EXAMPLES or low in _PLACEHOLDER_WORDS:
            return True
        if any(p in low for p in _PLACEHOLDER_PARTS) or _CONSTANT_NAME.match(value):
            return True
        if len(set(value)) <= 3:
            return True
        return _decodes_to_placeholder(value)


class ReferenceFilter:
    """Values that name where the secret comes from instead of being it."""

    def rejects(self, cand: Candidate, data: bytes, location: Location) -> bool:
        """True for ``${DB_PASSWORD}``, ``{{ .Values.x }}``, ``os.environ[...]``, ``kv:app#x``."""
        value = cand.secret.reveal()
        return bool(_REFERENCE.match(value)) or "${" in value or "{{" in value


class GenericValueFilter:
    """For generic assignment rules only: hashes, UUIDs, integrity strings, code, public keys."""

    def rejects(self, cand: Candidate, data: bytes, location: Location) -> bool:
        """True if an entropy-tested value is really a hash, id, identifier or public material."""
        if not cand.generic:
            return False
        value = cand.secret.reveal()
        if posixpath.basename(location.path).lower() in LOCKFILES:
            return True
        if (
            _HEX_HASH.match(value)
            or _PREFIXED_HASH.match(value)
            or _CRYPT_HASH.match(value)
            or _UUID.match(value)
            or _IDENTIFIER.match(value)
            or _DOTTED_NAME.match(value)
            or "%20" in value
        ):
            return True
        if value[0] in ":.=>-*&|/" or "::" in value or "->" in value or _QUERY.search(value):
            return True  # C++/Rust scopes, pointers, operators, paths, query strings: code
        words = _WORD.findall(value)
        if len(words) >= 2 and sum(map(len, words)) >= 0.6 * len(value):
            return True  # mostly words (PKCS7PrivateKeyTypes, boto3_client): a name, not random
        if not any(c.isdigit() for c in value) and ("." in value or value.islower()):
            return True  # dotted names and lowercase words: code, not a random secret
        if value.startswith(_PUBLIC_VALUE_PREFIXES):
            return True
        line = _line_of(data, cand.start)
        low = line.lower()
        return any(m.lower() in low for m in _PUBLIC_MARKERS) or b'"integrity"' in low


def default_filters() -> Sequence[Filter]:
    """Every built-in filter, in the order they run."""
    return (PlaceholderFilter(), ReferenceFilter(), GenericValueFilter())
