"""The one error hierarchy; each class carries the HTTP status it maps to.

Messages must never contain secret values, tokens or key material: they are shown to
clients and written to logs. Foreign exceptions are translated in the adapter that calls
them (``raise NotFoundError(...) from exc``).
"""

from __future__ import annotations

from typing import ClassVar


class VaultsideError(Exception):
    """Base of every error vaultside raises on purpose."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"

    def __init__(self, message: str, *, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: list[str] = list(details or [])

    def public_messages(self) -> list[str]:
        """The messages that may be shown to a client."""
        return [self.message, *self.details]


class InvalidRequestError(VaultsideError):
    """The request is malformed: bad path, body, field or parameter."""

    status = 400
    code = "invalid_request"


class PermissionDeniedError(VaultsideError):
    """Missing, wrong, expired or revoked token, or a policy denies the operation."""

    status = 403
    code = "permission_denied"

    def __init__(self, message: str = "permission denied", **kw: list[str] | None) -> None:
        super().__init__(message, **kw)


class NotFoundError(VaultsideError):
    """The thing asked for does not exist (only raised after authorization)."""

    status = 404
    code = "not_found"


class MethodNotAllowedError(VaultsideError):
    """The route exists but not for this method."""

    status = 405
    code = "method_not_allowed"


class ConflictError(VaultsideError):
    """A check-and-set or other precondition did not hold."""

    status = 409
    code = "conflict"


class PayloadTooLargeError(VaultsideError):
    """The request body or a value is larger than the configured limit."""

    status = 413
    code = "payload_too_large"


class ExpectationFailedError(VaultsideError):
    """An ``Expect`` header other than ``100-continue``."""

    status = 417
    code = "expectation_failed"


class TooManyRequestsError(VaultsideError):
    """The client is being slowed down (e.g. after repeated auth failures)."""

    status = 429
    code = "too_many_requests"


class SealedError(VaultsideError):
    """The server has no root key yet; nothing can be decrypted."""

    status = 503
    code = "sealed"

    def __init__(self, message: str = "vaultside is sealed", **kw: list[str] | None) -> None:
        super().__init__(message, **kw)


class UpstreamUnavailableError(VaultsideError):
    """A dependency (storage, Vault, audit sink) cannot be reached right now."""

    status = 503
    code = "unavailable"


class UpstreamError(VaultsideError):
    """A dependency answered with an error we cannot map to the client's fault."""

    status = 502
    code = "upstream_error"


class InternalError(VaultsideError):
    """A bug or unexpected state; clients only see "internal error" and a request id."""

    status = 500
    code = "internal"

    def public_messages(self) -> list[str]:
        return ["internal error"]


class IntegrityError(InternalError):
    """An AEAD tag did not verify: data was tampered with or moved. Log it, never retry."""

    code = "integrity"


class DeadlineExceededError(UpstreamUnavailableError):
    """Retried until the deadline (``vaultside.retry``) and it still failed; the message names
    what was waited for and the last error."""

    code = "deadline_exceeded"


# The class each HTTP status stands for where only the status is known: an aiohttp
# ``HTTPException`` on the server, an error answer without a ``code`` on the client.
BY_STATUS: dict[int, type[VaultsideError]] = {
    cls.status: cls
    for cls in (
        InvalidRequestError,
        PermissionDeniedError,
        NotFoundError,
        MethodNotAllowedError,
        ConflictError,
        PayloadTooLargeError,
        ExpectationFailedError,
        TooManyRequestsError,
        InternalError,
        UpstreamError,
        UpstreamUnavailableError,
    )
}
