"""The vaultside HTTP client: ``transport`` (HTTP, TLS, token, retries, errors by code), ``api``
(``VaultsideClient``: a typed method for every route), ``models`` (typed results; secret
metadata is ``vaultside.kv.models``) and ``source`` (``HttpSecretSource``).

The names below are the package's public surface; callers import them from here.
"""

from vaultside.client.api import VaultsideClient
from vaultside.client.models import BrokeredSecret, NotModified, SecretData, TokenAuth
from vaultside.client.source import HttpSecretSource
from vaultside.client.transport import (
    DEFAULT_ADDR,
    DEFAULT_RETRY_TIMEOUT,
    DEFAULT_TIMEOUT,
    Transport,
    error_from_response,
)

__all__ = [
    "DEFAULT_ADDR",
    "DEFAULT_RETRY_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "BrokeredSecret",
    "HttpSecretSource",
    "NotModified",
    "SecretData",
    "TokenAuth",
    "Transport",
    "VaultsideClient",
    "error_from_response",
]
