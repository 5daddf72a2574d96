"""Forked worker processes for a scan: tasks in, results out, over one pipe pair per worker.

Lighter than ``multiprocessing.Pool``, whose import and start-up (~15 ms: modules, three
threads, queues) were serial time in every parallel scan. ``jobs - 1`` children are forked
from this process, so they inherit whatever ``work`` needs (the scanner); only tasks and
results travel, pickled with a length prefix. Each task goes to a worker as soon as the
caller's iterator produces it, so producing tasks (indexing an archive) overlaps with working
on them; then this process works too, so ``jobs`` processes keep ``jobs`` cores busy.

- A worker's exception is raised in this process (by ``run``), and the other workers stop.
- A worker that dies (killed, crashed) is a ``RuntimeError``, never a hang.
- Workers ignore SIGINT (this process handles Ctrl-C and stops them), end with ``os._exit``
  (no atexit handlers, no flushing of this process's buffers), and are always reaped.

Fork only: use it from a single-threaded process (the CLI).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
import select
import signal
import struct
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar, cast

T = TypeVar("T")
R = TypeVar("R")

_LEN = struct.Struct("!Q")
_DONE = object()
_DEPTH = 2  # tasks a worker holds at once: the next one already waits in its pipe
_PIPE = 1 << 20  # task pipe capacity (Linux): two slices fit, a send never waits


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exact(fd: int, n: int) -> bytes:
    parts: list[bytes] = []
    while n:
        piece = os.read(fd, min(n, 1 << 20))
        if not piece:
            raise EOFError("pipe closed in the middle of a message")
        parts.append(piece)
        n -= len(piece)
    return b"".join(parts)


def send(fd: int, obj: object) -> None:
    """Write one pickled, length-prefixed message."""
    _write_all(fd, _message(obj))


def receive(fd: int) -> object:
    """Read one message; ``EOFError`` if the other end closed (before or during it)."""
    head = os.read(fd, _LEN.size)
    if not head:
        raise EOFError("pipe closed")
    if len(head) < _LEN.size:
        head += _read_exact(fd, _LEN.size - len(head))
    (n,) = _LEN.unpack(head)
    return pickle.loads(_read_exact(fd, n))  # noqa: S301 - our own forked child wrote it


def _serve(tasks: int, results: int, work: Callable[[T], R]) -> None:
    """A worker's loop: until the task pipe closes, run each task and send its outcome."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            task = receive(tasks)
        except EOFError:
            return
        try:
            outcome: tuple[bool, object] = (True, work(task))  # type: ignore[arg-type]
        except Exception as exc:  # raised again in the parent
            outcome = (False, exc)
        try:
            send(results, outcome)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            send(results, (False, RuntimeError(f"scan worker: unpicklable outcome ({exc})")))


class Workers(Generic[T, R]):
    """``jobs`` forked processes running ``work`` on the tasks given to ``run``."""

    def __init__(self, jobs: int, work: Callable[[T], R]) -> None:
        self._jobs = jobs
        self._work = work

    def run(self, tasks: Iterator[T]) -> Iterator[R]:
        """Results of every task, in the order they finish.

        ``jobs`` processes work: ``jobs - 1`` forked workers and this one, which first cuts
        the tasks (``tasks`` is iterated here) and, once none is left to cut, works on the
        queued ones itself, from the back while the workers take them from the front. Each
        worker holds up to ``_DEPTH`` tasks, so it never waits for this one to send more.
        """
        procs: list[tuple[int, int, int]] = []  # (pid, task write end, result read end)
        try:
            for _ in range(max(1, self._jobs - 1)):
                procs.append(self._fork([fd for p in procs for fd in p[1:]]))
            yield from self._dispatch(tasks, procs)
        finally:
            for _pid, task_w, result_r in procs:
                os.close(task_w)  # a worker ends when its task pipe closes
                os.close(result_r)
            for pid, _w, _r in procs:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)  # idle (or stuck) workers: no need to wait
                os.waitpid(pid, 0)

    def _fork(self, inherited: list[int]) -> tuple[int, int, int]:
        task_r, task_w = os.pipe()
        with contextlib.suppress(OSError, AttributeError):  # not Linux, or over the limit
            fcntl.fcntl(task_w, fcntl.F_SETPIPE_SZ, _PIPE)
        result_r, result_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                for fd in (task_w, result_r, *inherited):  # other workers' ends: their EOFs
                    os.close(fd)
                _serve(task_r, result_w, self._work)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(task_r)
        os.close(result_w)
        return pid, task_w, result_r

    def _dispatch(self, tasks: Iterator[T], procs: list[tuple[int, int, int]]) -> Iterator[R]:
        held = [0] * len(procs)  # tasks given to each worker and not answered yet
        unsent: list[deque[memoryview]] = [deque() for _ in procs]  # bytes not in its pipe yet
        by_fd = {result_r: i for i, (_pid, _w, result_r) in enumerate(procs)}
        for _pid, task_w, _r in procs:
            os.set_blocking(task_w, False)  # never wait on a worker that waits on us
        backlog: deque[T] = deque()
        more = True
        while True:
            for i, (_pid, task_w, _r) in enumerate(procs):
                while backlog and held[i] < _DEPTH:
                    unsent[i].append(memoryview(_message(backlog.popleft())))
                    held[i] += 1
                _flush(task_w, unsent[i])
            timeout: float | None = 0.0  # only look: this process has work of its own
            if more:
                task = next(tasks, _DONE)
                if task is _DONE:
                    more = False
                else:
                    backlog.append(cast(T, task))
            elif backlog:
                yield self._work(backlog.pop())
            elif not any(held):
                return
            else:
                timeout = None
            busy = [result_r for i, (_p, _w, result_r) in enumerate(procs) if held[i]]
            sending = [task_w for i, (_p, task_w, _r) in enumerate(procs) if unsent[i]]
            if not busy:
                continue
            ready, _, _ = select.select(busy, sending, [], timeout)
            for fd in ready:
                try:
                    ok, value = cast(tuple[bool, Any], receive(fd))
                except EOFError:
                    raise RuntimeError("a scan worker process died") from None
                if not ok:
                    raise cast(BaseException, value)
                held[by_fd[fd]] -= 1
                yield cast(R, value)


def _message(obj: object) -> bytes:
    data = pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
    return _LEN.pack(len(data)) + data


def _flush(fd: int, unsent: deque[memoryview]) -> None:
    """Write what the (non-blocking) pipe takes now; keep the rest for later."""
    while unsent:
        try:
            n = os.write(fd, unsent[0])
        except BlockingIOError:
            return
        except BrokenPipeError:  # a worker killed from outside
            raise RuntimeError("a scan worker process died") from None
        if n == len(unsent[0]):
            unsent.popleft()
        else:
            unsent[0] = unsent[0][n:]
