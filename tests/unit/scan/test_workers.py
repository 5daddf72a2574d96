"""Forked scan workers: every result comes back, errors surface, no worker is left behind."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from vaultside.errors import InvalidRequestError
from vaultside.scan.workers import Workers


def square(n: int) -> tuple[int, int]:
    return n, n * n


def children() -> set[int]:
    me = os.getpid()
    out: set[int] = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == me:
                        out.add(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return out


def test_every_task_is_done_once_and_workers_are_reaped() -> None:
    before = children()
    produced: list[int] = []

    def tasks() -> Iterator[int]:
        for n in range(200):
            produced.append(n)
            yield n

    results = list(Workers(3, square).run(tasks()))
    assert sorted(results) == [(n, n * n) for n in range(200)]
    assert children() == before


def test_big_tasks_and_results_cross_the_pipes() -> None:
    blob = b"x" * (3 << 20)  # larger than a pipe's buffer, both ways
    results = list(Workers(2, lambda b: b + b"!").run(iter([blob, blob, blob])))
    assert results == [blob + b"!"] * 3


def fail_on_seven(n: int) -> int:
    if n == 7:
        raise InvalidRequestError("layer 7 is corrupt")
    return n


def test_a_worker_error_is_raised_here_and_the_others_stop() -> None:
    before = children()
    with pytest.raises(InvalidRequestError, match="layer 7 is corrupt"):
        list(Workers(2, fail_on_seven).run(iter(range(50))))
    assert children() == before


PARENT = os.getpid()


def die_on_three(n: int) -> int:
    if n == 3 and os.getpid() != PARENT:  # this process also works on tasks: not here
        os.kill(os.getpid(), signal.SIGKILL)
    return n


def test_a_worker_that_dies_is_an_error_not_a_hang() -> None:
    before = children()
    with pytest.raises(RuntimeError, match="died"):
        list(Workers(3, die_on_three).run(iter(range(4))))  # 0-3 all go to the workers
    assert children() == before


def test_this_process_works_once_every_task_is_cut() -> None:
    """``jobs`` = 2: one forked worker, and this process takes tasks from the back."""
    pids = [pid for pid, _n in Workers(2, lambda n: (os.getpid(), n)).run(iter(range(40)))]
    assert len(pids) == 40 and PARENT in pids and len(set(pids)) == 2


def test_no_tasks_no_results() -> None:
    assert list(Workers(2, square).run(iter(()))) == []
