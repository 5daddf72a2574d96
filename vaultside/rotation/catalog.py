"""The operator's catalog of rotation targets that run code or send data away.

``command`` and ``webhook`` targets exist only here: an operator declares them in server
configuration (``[rotation.targets.<name>]``) and a rotation policy refers to one by name.
No API field can carry argv, an executable, a URL or environment variables.

Guarantees (compare Vault's plugin catalog, ``vault/plugincatalog``: sudo-only registration,
SHA-256 pinned, hash checked before each launch):

- A command's executable (``argv[0]``, an absolute path) is pinned by SHA-256. ``verify``
  checks every pin when the server starts (a mismatch refuses the start) and ``open_pinned``
  checks it again before every run. The bytes that were hashed are copied into a sealed
  ``memfd`` and executed from it (``/proc/self/fd/N``), so exactly the hashed content runs —
  no window between the check and ``exec`` for a rename or an in-place rewrite (go-plugin's
  ``SecureConfig``, which Vault uses, hashes the path and then executes the path). Only
  ``argv[0]`` is pinned: for a script, point ``argv[0]`` at the script itself (its ``#!``
  interpreter, normally a root-owned system binary, is not pinned); with an interpreter as
  ``argv[0]``, a script path among the arguments would not be pinned.
- A command gets none of the server's environment unless the operator lists a variable's
  name in ``env``.
- A webhook URL is ``https://``; plain ``http://`` only with ``allow_http`` and only to a
  loopback address. ``ca_file`` pins the CA bundle used to verify the server. Redirects are
  never followed (the target treats a 3xx as a failure).

Errors: ``InvalidRequestError`` for a bad declaration, an unknown name or a pin mismatch,
with the target's name and never a value.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from vaultside.errors import InvalidRequestError
from vaultside.netloc import is_loopback

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_CHUNK = 1 << 20
# Bigger executables are refused: each run holds a sealed in-memory copy of the program.
MAX_PROGRAM_BYTES = 256 << 20


@dataclass(frozen=True)
class CommandEntry:
    """A program the operator allows rotations to run, pinned by the SHA-256 of ``argv[0]``."""

    name: str
    argv: tuple[str, ...]
    sha256: str
    timeout: float = 30.0
    # Names of server environment variables passed through; none by default.
    env: tuple[str, ...] = ()
    kind: str = field(default="command", init=False)


@dataclass(frozen=True)
class WebhookEntry:
    """A URL the operator allows rotations to POST each step to."""

    name: str
    url: str
    ca_file: Path | None = None
    allow_http: bool = False
    timeout: float = 30.0
    kind: str = field(default="webhook", init=False)


CatalogEntry = CommandEntry | WebhookEntry


def check_entry(entry: CatalogEntry) -> None:
    """Raise ``InvalidRequestError`` (naming the field) if a declaration is not acceptable."""
    where = f"rotation.targets.{entry.name}"
    if not _NAME.fullmatch(entry.name):
        raise InvalidRequestError(f"{where}: target names are 1-64 of [a-z0-9_-]")
    if isinstance(entry, CommandEntry):
        if not entry.argv or not entry.argv[0].startswith("/"):
            raise InvalidRequestError(f"{where}.argv: argv[0] must be an absolute path")
        if not _SHA256.fullmatch(entry.sha256):
            raise InvalidRequestError(f"{where}.sha256: must be 64 lowercase hex digits")
        bad = [n for n in entry.env if not _ENV_NAME.fullmatch(n)]
        if bad:
            raise InvalidRequestError(f"{where}.env: names only, like PATH or PGSERVICE")
        return
    parts = urlsplit(entry.url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidRequestError(f"{where}.url: must be an https:// URL")
    if parts.username or parts.password:
        raise InvalidRequestError(f"{where}.url: credentials in the URL are not allowed")
    if parts.scheme == "http":
        # SECURITY: the body carries the secret's value: cleartext only to this host.
        if not entry.allow_http:
            raise InvalidRequestError(f"{where}.url: http:// needs allow_http = true (loopback)")
        if not is_loopback(parts.hostname):
            raise InvalidRequestError(f"{where}.url: http:// is allowed only to loopback")
    if entry.ca_file is not None and not entry.ca_file.is_file():
        raise InvalidRequestError(f"{where}.ca_file: not a readable file")


def _read_regular(entry: CommandEntry) -> bytes:
    where = f"command target {entry.name!r}"
    try:
        fd = os.open(entry.argv[0], os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise InvalidRequestError(f"{where}: cannot open argv[0] ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidRequestError(f"{where}: argv[0] is not a regular file")
        if info.st_size > MAX_PROGRAM_BYTES:
            raise InvalidRequestError(f"{where}: argv[0] is larger than {MAX_PROGRAM_BYTES} bytes")
        chunks: list[bytes] = []
        while chunk := os.read(fd, _CHUNK):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def open_pinned(entry: CommandEntry) -> int:
    """A sealed in-memory copy of ``argv[0]`` that matches the pin, as an fd to execute
    (``/proc/self/fd/N``; the caller closes it). Blocking I/O: call it in a thread.

    The bytes are read once, hashed, and copied into a ``memfd`` sealed against any change, so
    what runs is exactly what was hashed, even if the file is rewritten in place meanwhile.
    ``InvalidRequestError`` if the file is missing, not a regular file, or differs from the pin.
    """
    program = _read_regular(entry)
    # SECURITY: constant-time compare of the pinned and the actual digest.
    if not hmac.compare_digest(hashlib.sha256(program).hexdigest(), entry.sha256):
        raise InvalidRequestError(
            f"command target {entry.name!r}: argv[0] does not match its pinned sha256; "
            "refusing to run it"
        )
    fd = os.memfd_create(f"vaultside-target-{entry.name}", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        view = memoryview(program)
        while view:
            view = view[os.write(fd, view) :]
        seals = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
    except BaseException:
        os.close(fd)
        raise
    return fd


class TargetCatalog:
    """The declared targets by name; look-ups name the policy field that referred to them."""

    def __init__(self, entries: Mapping[str, CatalogEntry] | None = None) -> None:
        self._entries: dict[str, CatalogEntry] = {}
        for name, entry in (entries or {}).items():
            if name != entry.name:
                raise InvalidRequestError(f"rotation.targets.{name}: name mismatch")
            check_entry(entry)
            self._entries[name] = entry

    def names(self) -> list[str]:
        """Every declared name, sorted."""
        return sorted(self._entries)

    def get(self, kind: str, name: str) -> CatalogEntry:
        """The entry ``name`` of ``kind``; ``InvalidRequestError`` naming ``target.name``."""
        entry = self._entries.get(name)
        if entry is None or entry.kind != kind:
            raise InvalidRequestError(
                f"target.name: no {kind} target named {name[:64]!r} is declared in the server's "
                "configuration ([rotation.targets.<name>])"
            )
        return entry

    def verify(self) -> None:
        """Check every command pin now (at start-up); ``InvalidRequestError`` on the first bad."""
        for entry in self._entries.values():
            if isinstance(entry, CommandEntry):
                os.close(open_pinned(entry))
