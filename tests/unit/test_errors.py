"""Every error class: its HTTP status, code, client-visible messages and response body."""

from __future__ import annotations

import json

import pytest
from aiohttp.test_utils import make_mocked_request

from vaultside import errors
from vaultside.errors import VaultsideError

EXPECTED: dict[type[VaultsideError], tuple[int, str]] = {
    errors.VaultsideError: (500, "internal"),
    errors.InvalidRequestError: (400, "invalid_request"),
    errors.PermissionDeniedError: (403, "permission_denied"),
    errors.NotFoundError: (404, "not_found"),
    errors.MethodNotAllowedError: (405, "method_not_allowed"),
    errors.ConflictError: (409, "conflict"),
    errors.PayloadTooLargeError: (413, "payload_too_large"),
    errors.ExpectationFailedError: (417, "expectation_failed"),
    errors.TooManyRequestsError: (429, "too_many_requests"),
    errors.SealedError: (503, "sealed"),
    errors.UpstreamUnavailableError: (503, "unavailable"),
    errors.UpstreamError: (502, "upstream_error"),
    errors.InternalError: (500, "internal"),
    errors.IntegrityError: (500, "integrity"),
    errors.DeadlineExceededError: (503, "deadline_exceeded"),
}


def _all_error_classes() -> set[type[VaultsideError]]:
    found: set[type[VaultsideError]] = set()
    todo: list[type[VaultsideError]] = [VaultsideError]
    while todo:
        cls = todo.pop()
        if cls.__module__ == "vaultside.errors":
            found.add(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_every_error_class_is_covered() -> None:
    assert _all_error_classes() == set(EXPECTED)


@pytest.mark.parametrize("cls", list(EXPECTED), ids=lambda c: c.__name__)
def test_status_code_and_messages(cls: type[VaultsideError]) -> None:
    status, code = EXPECTED[cls]
    exc = cls("something specific", details=["more"])
    assert (exc.status, exc.code) == (status, code)
    assert isinstance(exc, Exception)
    hidden = issubclass(cls, errors.InternalError)
    expected = ["internal error"] if hidden else ["something specific", "more"]
    assert exc.public_messages() == expected
    assert exc.message == "something specific"


def test_default_messages() -> None:
    assert errors.PermissionDeniedError().message == "permission denied"
    assert errors.SealedError().message == "vaultside is sealed"
    assert errors.SealedError(details=["seal file missing"]).public_messages() == [
        "vaultside is sealed",
        "seal file missing",
    ]


def test_integrity_is_internal() -> None:
    exc = errors.IntegrityError("tag mismatch at kv/data/app/db/3")
    assert isinstance(exc, errors.InternalError)
    assert "kv/data" not in " ".join(exc.public_messages())


@pytest.mark.parametrize("cls", list(EXPECTED), ids=lambda c: c.__name__)
def test_response_body(cls: type[VaultsideError]) -> None:
    middleware = pytest.importorskip("vaultside.api.middleware")
    request = make_mocked_request("GET", "/v1/secrets/x")
    response = middleware.error_response(request, cls("detail here"))
    status, code = EXPECTED[cls]
    assert response.status == status
    assert response.content_type == "application/json"
    body = json.loads(response.body)
    assert set(body) == {"errors", "code", "request_id"}
    assert body["code"] == code  # the client maps errors by this code
    if issubclass(cls, errors.InternalError):
        assert body["errors"] == ["internal error"]
    else:
        assert body["errors"] == ["detail here"]
