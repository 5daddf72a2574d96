"""False-positive filters: placeholders, documented examples, references, hashes, UUIDs,
lockfile integrity strings, public keys and certificates, code identifiers.

Format-specific rules (a ``ghp_`` token, an ``AKIA`` key id) only go through the placeholder
and reference filters; entropy-tested ``generic`` rules go through all of them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import posixpath
import re
from collections.abc import Sequence

from vaultside.scan.base import Candidate, Filter, Location
from vaultside.scan.detectors.entropy import shannon_entropy

# Placeholders are judged on the WHOLE value. Long markers almost never occur by chance in
# random text (a 1,700-character PEM body contains a given 7-letter word with odds ~1e-8):
# any occurrence makes a placeholder. Short ones (``xyz``, ``todo``, ``12345``) occur by chance
# in long random values (one key in 12 contains ``xyz``), so they only count when the rest
# of the value is short, low-entropy or words.
_PLACEHOLDER_MARKERS = (
    "example",
    "changeme",
    "change_me",
    "change-me",
    "placeholder",
    "replaceme",
    "replace_me",
    "redacted",
    "notreal",
    "not_real",
    "not-a-real",
    "notarealtoken",
    "yourkey",
    "your_key",
    "your-key",
    "your_token",
    "your-token",
    "your_secret",
    "your-secret",
    "your_password",
    "your-password",
    "your_api",
    "your-api",
)
_PLACEHOLDER_PARTS = (
    "xxxx",
    "your_",
    "your-",
    "dummy",
    "sample",
    "insert",
    "replace_",
    "todo",
    "fixme",
    "foobar",
    "fake",
    "0000000000",
    "1234567890",
    "12345",
    "xyz",
    "abcdefgh",
    "secret",
    "token",
    "password",
    "here",
)
_SHORT_VALUE = 24  # below this, any placeholder part makes a placeholder
_MASK_RUN = re.compile(r"([xX*#.•])\1{3,}|<[^<>\s]{1,64}>|\[[A-Z_ ]{3,}\]")
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
# Values published in RFCs and vendor documentation as examples (RFC 6749/6750/7617 tokens
# and client credentials, the jwt.io example JWT, AWS's and Stripe's documented keys, GitHub's
# documentation token): SHA-256 digests (first 32 hex digits), so this file holds no tokens.
_DOCUMENTED_EXAMPLES = frozenset(
    {
        "6c96130f130ab0d6d158397e24d2bcc1",
        "00cf4c781dc37003f7c7dd7d4c9a6ef1",
        "a35b81a7d7927b70ec99270dd2362b88",
        "ca7459e2b26776de081b9a07e40227fd",
        "cf4d418ed3de92d71f767db5391d5a2d",
        "bdfeaef44475711c3abaf41d3ddd3532",
        "b8e148545b13c78bc74da2f1a7275dd7",
        "7f75367e7881255134e1375e723d1dea",
        "1a5d44a2dca19669d72edf4c4f1c27c4",
        "78314b11be2e581549ac1c4f616563fa",
        "2cafc0970149a84f3b9e62eaf169f36f",
        "3543c50b0cb9cea8e55eb1f529b79f04",
        "bc3ae723f57c6b9e3fd80b699fcc420f",
        "9e309cccd311ea64d04133daf7760f71",
    }
)
# jwt.io's example claims, reused with other signatures all over documentation
_EXAMPLE_JWT_CLAIMS = (b'"John Doe"', b'"name": "John Doe"')
_REFERENCE = re.compile(
    r"^(?:\$\{|\$[A-Za-z_][A-Za-z0-9_]*(?:$|[/:@.\-])|\$\(|%\(|%[A-Za-z_][A-Za-z0-9_]*%(?:$|[\\/;])|\{\{|\{%|#\{|<%|@[A-Za-z_]+@|"
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
# letter runs no English word has: 4 consonants, 4 vowels, or 5 letters without a vowel
_UNWORDLIKE = re.compile(r"[^aeiouy]{4}|[aeiou]{4}|[^aeiou]{5}")
# a query string: only URL-safe characters, and "&name=" pairs (not "&7=" of a random key)
_QUERY = re.compile(r"^[\w.\-%+~/:=]*(?:&[A-Za-z_]\w*=[\w.\-%+~/:]*)+$")
_NUMBER = re.compile(r"^[0-9.:+\-eE/ T]+$")  # numbers, timestamps, dates, versions, addresses
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


def documented_example(value: str) -> bool:
    """A value published in an RFC or vendor documentation (by digest), or jwt.io's claims."""
    if hashlib.sha256(value.encode()).hexdigest()[:32] in _DOCUMENTED_EXAMPLES:
        return True
    if value.startswith("eyJ") and value.count(".") == 2:
        body = value.split(".")[1]
        try:
            claims = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            return False
        return any(c in claims for c in _EXAMPLE_JWT_CLAIMS)
    return False


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
    return any(p in text for p in (*_PLACEHOLDER_MARKERS, *_PLACEHOLDER_PARTS, "real"))


def _mostly_words(value: str) -> bool:
    """Names such as ``PKCS7PrivateKeyTypes`` or ``boto3_client``: words, at most two digits
    (random strings also have lowercase runs, but more digits)."""
    if sum(c.isdigit() for c in value) > 2:
        return False
    words = [w for w in _WORD.findall(value) if not _UNWORDLIKE.search(w.lower())]
    return len(words) >= 2 and sum(map(len, words)) >= 0.6 * len(value)


def _prose(value: str) -> bool:
    """Words separated by spaces (``AWS Access Key``, ``italic #A3AAB2``): a label, not a key."""
    tokens = value.split()
    if len(tokens) < 2:
        return False
    return 2 * sum(1 for t in tokens if t.isalpha()) >= len(tokens)


def is_placeholder(value: str) -> bool:
    """A templated or low-entropy stand-in, judged on the whole value (never a long random
    value because a short word occurs in it by chance)."""
    low = value.lower()
    if low in _PLACEHOLDER_WORDS or len(set(value)) <= 3 or _CONSTANT_NAME.match(value):
        return True
    if _MASK_RUN.search(value) or any(m in low for m in _PLACEHOLDER_MARKERS):
        return True
    parts = [p for p in _PLACEHOLDER_PARTS if p in low]
    if parts:
        if len(value) < _SHORT_VALUE:
            return True
        rest = low
        for p in parts:
            rest = rest.replace(p, "")
        if len(rest) < 12 or shannon_entropy(rest) < 3.0 or _mostly_words(value):
            return True
    return _decodes_to_placeholder(value)


class PlaceholderFilter:
    """Placeholders, documentation examples and repeated characters."""

    def rejects(self, cand: Candidate, data: bytes, location: Location) -> bool:
        """True for ``changeme``, ``<your-key>``, ``...EXAMPLE``, ``xxxxxxxx`` and the like."""
        value = cand.secret.reveal()
        return documented_example(value) or is_placeholder(value)


class ReferenceFilter:
    """Values that name where the secret comes from instead of being it."""

    def rejects(self, cand: Candidate, data: bytes, location: Location) -> bool:
        """True for ``${DB_PASSWORD}``, ``{{ .Values.x }}``, ``os.environ[...]``, ``kv:app#x``."""
        value = cand.secret.reveal()
        return bool(_REFERENCE.match(value)) or "${" in value or "{{" in value


# Hex is how random keys are written too (Rails' secret_key_base, Flask's os.urandom().hex()):
# a hex value is a digest only when its name says so.
_DIGEST_NAME = re.compile(
    rb"(?i)(?:sha|md5|hash|digest|checksum|commit|integrity|fingerprint|etag|revision|"
    rb"[_\-.]id\b|[_\-.]ids?[\"']?\s*[:=>])"
)


def _mixed(value: str) -> bool:
    """Upper and lower case letters and digits: random, not a path or an operator."""
    return (
        any(c.isupper() for c in value)
        and any(c.islower() for c in value)
        and any(c.isdigit() for c in value)
    )


def _names_a_digest(data: bytes, start: int) -> bool:
    """The text before a hex value on its line names a digest or an id (or there is none)."""
    lo = data.rfind(b"\n", max(0, start - 256), start) + 1
    before = data[lo:start]
    return not before.strip() or bool(_DIGEST_NAME.search(before))


class GenericValueFilter:
    """For generic assignment rules only: hashes, UUIDs, integrity strings, code, public keys."""

    def rejects(self, cand: Candidate, data: bytes, location: Location) -> bool:
        """True if an entropy-tested value is really a hash, id, identifier or public material."""
        if not cand.generic:
            return False
        value = cand.secret.reveal()
        if posixpath.basename(location.path).lower() in LOCKFILES:
            return True
        if _HEX_HASH.match(value) and _names_a_digest(data, cand.start):
            return True
        if (
            _PREFIXED_HASH.match(value)
            or _CRYPT_HASH.match(value)
            or _UUID.match(value)
            or _IDENTIFIER.match(value)
            or _DOTTED_NAME.match(value)
            or "%20" in value
        ):
            return True
        quoted = data[cand.start - 1 : cand.start] in (b'"', b"'")
        lead = not quoted and value[0] in ":.=>-*&|/" and not _mixed(value)
        if lead or "::" in value or "->" in value:
            return True  # C++/Rust scopes, pointers, operators, paths: code
        if _QUERY.search(value):
            return True  # query strings
        if _mostly_words(value) or _prose(value) or _NUMBER.match(value):
            return True  # mostly words (PKCS7PrivateKeyTypes, boto3_client): a name, not random
        if not any(c.isdigit() for c in value) and ("." in value or value.islower()):
            return True  # dotted names and lowercase words: code, not a random secret
        if value.startswith(_PUBLIC_VALUE_PREFIXES):
            return True
        line = _line_of(data, cand.start)
        low = line.lower()
        return any(m.lower() in low for m in _PUBLIC_MARKERS) or b'"integrity"' in low


_DOC_DIRS = ("/share/doc/", "/share/man/", "/share/info/", "/share/gtk-doc/", "/share/help/")
_DOC_NAMES = re.compile(
    r"^(?:(?:readme|changelog|news|authors|contributing|contributors|copying|license|notice)"
    r"(?:[._\-].*)?|pkg-info|metadata|(?:changes|history)\.(?:md|rst|txt)|description\.rst)$",
    re.IGNORECASE,
)
_DOC_EXT = re.compile(r"\.(?:md|markdown|rst|txt|adoc|html?|texi|tex|[1-9][a-z]?)(?:\.gz)?$", re.I)
_DOC_SEGMENTS = frozenset({"doc", "docs", "man", "examples", "example", "samples"})
_PSEUDO_PATHS = ("config/Env", "config/Labels", "config/history", "container/")
_PACKAGE_DIRS = frozenset({"site-packages", "dist-packages", "node_modules", "vendor", "gems"})


def is_documentation(path: str) -> bool:
    """Documentation by its path: ``/usr/share/doc/**``, man pages, READMEs, changelogs,
    ``*.dist-info/METADATA``, ``PKG-INFO``, and prose files of docs dirs and packages."""
    p = "/" + path.lstrip("/")
    if any(d in p for d in _DOC_DIRS):
        return True
    parts = p.split("/")
    if _DOC_NAMES.match(parts[-1]):
        return True
    if _DOC_EXT.search(parts[-1]):
        segs = set(parts[:-1])
        return bool(segs & _DOC_SEGMENTS or segs & _PACKAGE_DIRS)
    return False


class DocumentationFilter:
    """Matches that rest on context (assignment names, URL syntax, a failed checksum) are
    examples inside documentation; format-specific ones (a private key, a checksummed token)
    are still reported there."""

    def rejects(self, cand: Candidate, data: bytes, location: Location) -> bool:
        """True for a generic or contextual match in a documentation file."""
        if not (cand.generic or cand.contextual):
            return False
        if not location.nested and location.path.startswith(_PSEUDO_PATHS):
            return False  # image config and container inspect data, not files
        paths = [location.path, *location.nested]
        if location.kind == "path":  # a directory scan: paths are relative to the target
            paths.append(posixpath.join(location.target, location.path))
        return any(is_documentation(p) for p in paths)


def default_filters() -> Sequence[Filter]:
    """Every built-in filter, in the order they run."""
    return (PlaceholderFilter(), ReferenceFilter(), GenericValueFilter(), DocumentationFilter())
