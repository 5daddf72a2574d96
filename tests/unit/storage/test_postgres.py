"""PostgresStorage without a server: error translation, DSN redaction, closed-state errors."""

from __future__ import annotations

import asyncpg
import pytest

from vaultside.errors import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    UpstreamError,
    UpstreamUnavailableError,
    VaultsideError,
)
from vaultside.storage.postgres import PostgresStorage, redact_dsn, translate

E = asyncpg.exceptions

TRANSLATIONS: list[tuple[BaseException, type[VaultsideError]]] = [
    (E.UniqueViolationError("dup"), ConflictError),
    (E.DeadlockDetectedError("deadlock"), ConflictError),
    (E.SerializationError("serialization"), ConflictError),
    (ConnectionRefusedError(111, "refused"), UpstreamUnavailableError),
    (TimeoutError(), UpstreamUnavailableError),
    (OSError("no route"), UpstreamUnavailableError),
    (E.ConnectionDoesNotExistError("gone"), UpstreamUnavailableError),
    (E.AdminShutdownError("shutdown"), UpstreamUnavailableError),
    (E.CannotConnectNowError("starting"), UpstreamUnavailableError),
    (E.TooManyConnectionsError("full"), UpstreamUnavailableError),
    (E.InvalidPasswordError("bad password"), UpstreamUnavailableError),
    (E.InvalidCatalogNameError("no db"), UpstreamUnavailableError),
    (E.InterfaceError("connection is closed"), UpstreamUnavailableError),
    (E.InternalClientError("state"), UpstreamUnavailableError),
    (E.CharacterNotInRepertoireError("nul"), InvalidRequestError),
    (E.DataError("bad arg"), InvalidRequestError),
    (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogate"), InvalidRequestError),
    (E.UndefinedTableError("no table"), UpstreamError),
    (RuntimeError("odd"), UpstreamError),
]


@pytest.mark.parametrize(("exc", "expected"), TRANSLATIONS, ids=lambda v: type(v).__name__)
def test_translate(exc: BaseException, expected: type[VaultsideError]) -> None:
    err = translate(exc)
    assert type(err) is expected
    assert err.__cause__ is exc


def test_translate_messages_do_not_echo_driver_text() -> None:
    err = translate(E.UniqueViolationError("Key (key)=(kv/data/app/1) already exists"))
    assert "kv/data" not in err.message
    err = translate(E.InvalidPasswordError('password authentication failed for user "x"'))
    assert err.message == "storage rejected the credentials"


def test_translate_keeps_vaultside_errors() -> None:
    err = NotFoundError("x")
    assert translate(err) is err


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        ("postgresql://u:hunter2@db.example:6543/vs", "db.example:6543/vs"),
        ("postgres://u:p%40ss@127.0.0.1/vs?sslmode=require", "127.0.0.1:5432/vs"),
        ("host=db user=u password=hunter2", "<dsn>"),
        ("postgresql://u:pw@[::1:bad/vs", "<dsn>"),
    ],
)
def test_redact_dsn(dsn: str, shown: str) -> None:
    assert redact_dsn(dsn) == shown
    assert "hunter2" not in repr(PostgresStorage(dsn))


async def test_operations_before_open_are_unavailable() -> None:
    storage = PostgresStorage("postgresql://u:p@127.0.0.1:1/db")
    with pytest.raises(UpstreamUnavailableError):
        await storage.get("k")
    with pytest.raises(UpstreamUnavailableError):
        await storage.put("k", b"v")
    await storage.close()
    await storage.close()


async def test_empty_batch_and_zero_limit_need_no_connection() -> None:
    storage = PostgresStorage("postgresql://u:p@127.0.0.1:1/db")
    await storage.write_batch([])
    assert await storage.list("a/", limit=0) == []


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://u:hunter2@127.0.0.1:notaport/db",
        "postgresql://u:hunter2@127.0.0.1:1/db?sslmode=bogus",
        "mysql://u:hunter2@127.0.0.1/db",
    ],
)
async def test_bad_dsn_is_a_config_error_without_the_dsn(dsn: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        await PostgresStorage(dsn).open()
    assert info.value.message == "invalid PostgreSQL DSN in storage settings"
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
