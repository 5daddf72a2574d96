"""The client's environment: the ``VAULTSIDE_*`` variables ``VaultsideClient.from_env`` reads
(Vault's CLI names with ``VAULT_`` -> ``VAULTSIDE_``), and their parsers.

Each parser raises ``InvalidRequestError`` naming the variable (the CLI exits 2 with one line);
a malformed value is never echoed except an address without credentials in it.
"""

from __future__ import annotations

from typing import Final

from vaultside import errors
from vaultside.durations import parse_duration

MAX_RETRIES_LIMIT: Final = 100

# The client's environment (read by ``VaultsideClient.from_env``; the CLI reference lists it).
CLIENT_ENV: Final[dict[str, str]] = {
    "VAULTSIDE_ADDR": "server URL, http:// or https:// (default http://127.0.0.1:8200)",
    "VAULTSIDE_TOKEN": "token (or VAULTSIDE_TOKEN_FILE: a file holding it)",
    "VAULTSIDE_TOKEN_FILE": "file holding the token, read when VAULTSIDE_TOKEN is unset",
    "VAULTSIDE_CACERT": "PEM file of CA certificates to verify the server with",
    "VAULTSIDE_CAPATH": "directory of CA certificates (OpenSSL hashed layout, `openssl rehash`)",
    "VAULTSIDE_CLIENT_CERT": "PEM client certificate for mutual TLS (key inside, or below)",
    "VAULTSIDE_CLIENT_KEY": "PEM private key of VAULTSIDE_CLIENT_CERT",
    "VAULTSIDE_TLS_SERVER_NAME": "name to send (SNI) and verify the server certificate against,"
    " instead of the host of VAULTSIDE_ADDR",
    "VAULTSIDE_CLIENT_TIMEOUT": "time limit of one request: seconds or e.g. 1m (default 30)",
    "VAULTSIDE_MAX_RETRIES": f"how many times to retry a failed request (0 to"
    f" {MAX_RETRIES_LIMIT}; default: as many as VAULTSIDE_RETRY_TIMEOUT allows)",
    "VAULTSIDE_RETRY_TIMEOUT": "how long to retry an unreachable, sealed or failing (5xx)"
    " server, with backoff: seconds or e.g. 2m (default 30; 0: no retry; then exit 7)",
    "VAULTSIDE_SOCKET": "unix socket of the server, instead of TCP",
}


def check_addr(addr: str) -> None:
    """Refuse an address aiohttp could not use, with the fix (not ``NonHttpUrlClientError``)."""
    scheme, sep, rest = addr.partition("://")
    if sep and scheme.lower() in ("http", "https") and rest.strip("/"):
        return
    # SECURITY: an address with user:password@ is not echoed back.
    shown = "(hidden: it holds '@')" if "@" in addr else addr[:100]
    if not sep:
        raise errors.InvalidRequestError(
            f"VAULTSIDE_ADDR {shown} has no scheme: use http://{shown} or https://{shown}"
        )
    raise errors.InvalidRequestError(
        f"VAULTSIDE_ADDR {shown} must be http://HOST[:PORT] or https://HOST[:PORT]"
    )


def env_timeout(text: str) -> float:
    """``VAULTSIDE_CLIENT_TIMEOUT``: seconds or a duration, more than 0."""
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise errors.InvalidRequestError(f"VAULTSIDE_CLIENT_TIMEOUT {exc}") from None
    if seconds <= 0:
        raise errors.InvalidRequestError("VAULTSIDE_CLIENT_TIMEOUT must be more than 0")
    return seconds


def env_retries(text: str) -> int:
    """``VAULTSIDE_MAX_RETRIES``: a whole number from 0 to ``MAX_RETRIES_LIMIT``."""
    if not text.isascii() or not text.isdigit() or int(text) > MAX_RETRIES_LIMIT:
        raise errors.InvalidRequestError(
            f"VAULTSIDE_MAX_RETRIES must be a whole number from 0 to {MAX_RETRIES_LIMIT}"
        )
    return int(text)


def env_retry_timeout(text: str) -> float:
    """``VAULTSIDE_RETRY_TIMEOUT``: seconds or a duration, 0 or more (0: no retry)."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise errors.InvalidRequestError(f"VAULTSIDE_RETRY_TIMEOUT {exc}") from None
