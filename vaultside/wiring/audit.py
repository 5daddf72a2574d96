"""Audit wiring: the sinks, the HMAC key file and the chain id from settings."""

from __future__ import annotations

import socket
from pathlib import Path

from vaultside.audit.sinks import AuditSink, FileSink, StdoutSink
from vaultside.config.settings import Settings
from vaultside.errors import InvalidRequestError


def audit_key_file(settings: Settings) -> Path:
    """The HMAC key used to hash identifiers in audit records."""
    configured = settings.audit.hmac_key_file
    return settings.resolve(configured if configured is not None else Path("audit-hmac.key"))


def audit_chain_id(settings: Settings) -> str:
    """The id of this server's audit chain: ``audit.chain_id`` or hostname + file path."""
    if settings.audit.chain_id is not None:
        return settings.audit.chain_id
    file = settings.audit.file
    path = settings.resolve(file).resolve() if file is not None else Path("-")
    return f"{socket.gethostname()}:{path}"


def build_audit_sinks(settings: Settings) -> list[AuditSink]:
    """The configured audit sinks; a request whose record no sink accepts fails (503)."""
    sinks: list[AuditSink] = []
    # An empty VAULTSIDE_AUDIT__FILE parses as Path("."): treat it as "no file".
    if settings.audit.file is not None and str(settings.audit.file) not in ("", "."):
        path = settings.resolve(settings.audit.file)
        if path.is_dir():
            raise InvalidRequestError(f"audit.file {path} is a directory")
        sinks.append(
            FileSink(path, fsync=settings.audit.fsync, max_bytes=settings.audit.max_file_bytes)
        )
    if settings.audit.stdout:
        sinks.append(StdoutSink())
    if not sinks:
        # SECURITY: fail closed at start-up rather than answering 503 to every request.
        raise InvalidRequestError("no audit sink is configured: set audit.file or audit.stdout")
    return sinks
