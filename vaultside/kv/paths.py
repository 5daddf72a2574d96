"""Secret path rules, checked before a path touches storage, a filesystem or a policy.

A path is ``/``-separated segments:

- each segment is 1-128 characters of ``[A-Za-z0-9._-]`` and is not ``.`` or ``..``;
- at most 32 segments and 512 characters in total;
- no empty segment (``a//b``), no leading or trailing ``/``, no control characters
  (implied by the segment alphabet, but named in the error for clarity);
- ``:`` never appears, so the API can use ``path:action`` suffixes.

A list *prefix* follows the same rules but may be empty (the root) and may end with one
``/``. Errors are ``InvalidRequestError`` naming the problem (paths are not secret).
"""

from __future__ import annotations

import re

from vaultside.errors import InvalidRequestError

MAX_SEGMENTS = 32
MAX_PATH_CHARS = 512
MAX_SEGMENT_CHARS = 128
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")


def _problem(path: str) -> str | None:
    if not path:
        return "path is empty"
    if len(path) > MAX_PATH_CHARS:
        return f"path is longer than {MAX_PATH_CHARS} characters"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        return "path contains a control character"
    if path.startswith("/"):
        return "path must not start with '/'"
    if path.endswith("/"):
        return "path must not end with '/'"
    segments = path.split("/")
    if len(segments) > MAX_SEGMENTS:
        return f"path has more than {MAX_SEGMENTS} segments"
    for number, segment in enumerate(segments, start=1):
        if not segment:
            return f"path has an empty segment (segment {number})"
        if segment in (".", ".."):
            return f"path segment {number} is {segment!r}, which is not allowed"
        if len(segment) > MAX_SEGMENT_CHARS:
            return f"path segment {number} is longer than {MAX_SEGMENT_CHARS} characters"
        if not _SEGMENT.fullmatch(segment):
            # SECURITY: names the segment by number; the text itself is client input.
            return f"path segment {number} has characters outside [A-Za-z0-9._-]"
    return None


def validate_path(path: str) -> str:
    """Return ``path`` if it is a valid secret path, else raise ``InvalidRequestError``."""
    if not isinstance(path, str):
        raise InvalidRequestError("path must be a string")
    problem = _problem(path)
    if problem is not None:
        raise InvalidRequestError(problem)
    return path


def validate_prefix(prefix: str) -> str:
    """Return ``prefix`` unchanged if valid: ``""`` or a path, optionally ending with ``/``."""
    if not isinstance(prefix, str):
        raise InvalidRequestError("prefix must be a string")
    if prefix == "":
        return prefix
    if prefix.startswith("/"):
        raise InvalidRequestError("prefix must not start with '/'")
    body = prefix[:-1] if prefix.endswith("/") else prefix
    problem = _problem(body)
    if problem is not None:
        raise InvalidRequestError(problem.replace("path", "prefix", 1))
    return prefix
