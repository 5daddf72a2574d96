"""The connection layer under the app: header-read deadline, parser errors, ``Expect``.

aiohttp's ``RequestHandler`` (one per connection) has a keep-alive timeout but no deadline
for reading a request head, answers its own parser errors in plain text with its version in
``Server`` and no audit record, and sends ``100 Continue`` before any middleware runs. This
module closes those gaps without forking aiohttp:

- ``header_read_timeout``: from the connection's start (and from the first byte of each later
  request head) to a complete head; a connection that misses it is closed with no answer.
  Idle kept-alive connections are closed after ``keepalive_timeout`` (aiohttp's own timer).
- A request the parser rejects (bad request line, header or chunk) is handed to the app with
  ``MALFORMED`` set, so it goes through the whole middleware pipeline: a request id, the
  ``{"errors": [...]}`` body, ``Server: vaultside`` and exactly one audit record. The parser's
  own message quotes the input, so only the exception's class name is passed on.
- A parser error in the body of a request already being handled fails that request's body
  read (the error boundary answers 400) instead of queueing a second, never-read answer.
- ``Expect`` is removed from the request before the app sees it (aiohttp would answer it before
  the middlewares) and kept under ``EXPECT``; ``continue_middleware`` answers it after the
  size check and authentication.

It relies on aiohttp internals (``_make_error_handler``, ``_request_count``, ``_waiter``,
``_messages``, ``_current_request``, ``_request_in_progress``):
``tests/unit/api/test_protocol.py`` fails loudly if they change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler, RequestPayloadError, _ErrInfo

from vaultside.api.body import dumps
from vaultside.api.state import EXPECT, MALFORMED

log = logging.getLogger(__name__)

_AppHandler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


class GuardedRequestHandler(RequestHandler):
    """aiohttp's per-connection protocol with a header-read deadline and app-shaped errors."""

    def __init__(self, manager: web.Server, *, header_read_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._header_read_timeout = header_read_timeout
        self._header_handle: asyncio.TimerHandle | None = None
        app_handler = manager.request_handler

        async def strip_expect(request: web.BaseRequest) -> web.StreamResponse:
            expect = request.headers.get(hdrs.EXPECT)
            if expect is not None:
                headers = request.headers.copy()
                del headers[hdrs.EXPECT]
                request = request.clone(headers=headers)
                request[EXPECT] = expect
            return await app_handler(request)

        self._request_handler = strip_expect

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        heads_before = self._request_count
        idle = self._request_count == 0 or (self._waiter is not None and not self._waiter.done())
        super().data_received(data)
        self._fail_body_in_progress()
        if self._request_count != heads_before:
            self._disarm_header_deadline()
        elif idle and self._header_handle is None:
            # The first byte of the next request head on a kept-alive connection.
            self._arm_header_deadline()

    def _fail_body_in_progress(self) -> None:
        """A parser error in the body of a request being handled (e.g. a bad deflate stream)
        ends that request's body with an error instead of queueing a second answer: the
        handler would otherwise wait for the rest of a body that never comes."""
        request = self._current_request
        if request is None or not self._messages or not isinstance(self._messages[-1][0], _ErrInfo):
            return
        if request.content.is_eof():
            return  # the body was complete: the error is the next (pipelined) request's own
        err_info = self._messages.pop()[0]
        assert isinstance(err_info, _ErrInfo)
        failure = RequestPayloadError("request body cannot be decoded")
        failure.__cause__ = err_info.exc
        request.content.set_exception(failure)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        self._disarm_header_deadline()
        self._header_handle = self._loop.call_later(
            self._header_read_timeout, self._header_deadline_passed
        )

    def _disarm_header_deadline(self) -> None:
        if self._header_handle is not None:
            self._header_handle.cancel()
            self._header_handle = None

    def _header_deadline_passed(self) -> None:
        self._header_handle = None
        if self._request_in_progress or self._messages:
            return
        # SECURITY: a slow (or stalled) head holds a connection and its buffers: drop it.
        self.force_close()

    def _make_error_handler(self, err_info: _ErrInfo) -> _AppHandler:
        kind = type(err_info.exc).__name__
        app_handler = self._request_handler
        assert app_handler is not None

        async def through_the_app(request: web.BaseRequest) -> web.StreamResponse:
            request[MALFORMED] = kind
            response = await app_handler(request)
            response.force_close()
            return response

        return through_the_app

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """aiohttp's lingering read of a body it cannot decode is the client's fault, not ours."""
        if isinstance(kw.get("exc_info"), RequestPayloadError | HttpProcessingError):
            log.debug("unreadable request body dropped")
            return
        super().log_exception(*args, **kw)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """Only reached if something escapes the app's own error boundary: no banner, no text."""
        if request.writer.output_size > 0:
            raise ConnectionError("response already started")
        log.error(
            "error outside the app",
            extra={"status": status, "error_type": type(exc).__name__ if exc else ""},
        )
        code = "internal" if status >= 500 else "invalid_request"
        body = {
            "errors": ["internal error" if status >= 500 else "bad request"],
            "code": code,
            "request_id": "",
        }
        response = web.Response(body=dumps(body), status=status, content_type="application/json")
        response.headers[hdrs.SERVER] = "vaultside"
        response.force_close()
        return response


class GuardedServer(web.Server):
    """The protocol factory: every connection gets a ``GuardedRequestHandler``."""

    def __init__(self, base: web.Server, header_read_timeout: float) -> None:
        super().__init__(
            base.request_handler,
            request_factory=base.request_factory,
            handler_cancellation=base.handler_cancellation,
            loop=base._loop,
            **base._kwargs,
        )
        self._header_read_timeout = header_read_timeout

    def __call__(self) -> RequestHandler:
        return GuardedRequestHandler(
            self, loop=self._loop, header_read_timeout=self._header_read_timeout, **self._kwargs
        )


class GuardedAppRunner(web.AppRunner):
    """``web.AppRunner`` whose server makes ``GuardedRequestHandler`` connections.

    ``keepalive_timeout`` (and any other aiohttp handler option) passes through ``kwargs``.
    """

    def __init__(self, app: web.Application, *, header_read_timeout: float, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._header_read_timeout = header_read_timeout

    async def _make_server(self) -> web.Server:
        return GuardedServer(await super()._make_server(), self._header_read_timeout)
