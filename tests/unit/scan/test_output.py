"""Output where users use it: progress on stderr across archives, a table that shows any path
verbatim (and colours severity on a terminal)."""

from __future__ import annotations

import os
import pty
import random
import select
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.scan.credgen import AN, github_token, rnd
from tests.unit.scan.imagegen import ImageSpec, docker_save
from vaultside.scan.base import Finding, Location, ScanStats, Secret, Severity
from vaultside.scan.reporters.table import TableReporter
from vaultside.scan.scanner import Scanner
from vaultside.scan.sources.archive import ImageArchiveSource
from vaultside.scan.sources.path import PathSource


def _finding(path: str, created_by: str | None = None) -> Finding:
    rng = random.Random(1)
    loc = Location(
        "image", "app:[red]1[/]", path, 3, layer="sha256:" + "a" * 64, created_by=created_by
    )
    return Finding("github-token", "GitHub [token]", Severity.HIGH, loc, Secret(github_token(rng)))


def test_table_shows_markup_like_paths_verbatim() -> None:
    findings = [
        _finding("srv/odd[/]dir/app.env"),
        _finding("srv/[bold]x.env", created_by="RUN echo '[/]' > /x"),
    ]
    text = TableReporter(width=200).render(findings)
    assert "srv/odd[/]dir/app.env" in text
    assert "srv/[bold]x.env" in text and "app:[red]1[/]" in text and "GitHub [token]" in text
    assert "echo '[/]'" in text
    assert "\x1b[" not in text  # no colour unless asked


def test_table_colours_severity_when_asked() -> None:
    text = TableReporter(width=120, color=True).render([_finding("a.env")])
    assert "\x1b[31m" in text  # high = red
    assert "a.env" in text


def test_overall_progress_across_archives(tmp_path: Path) -> None:
    rng = random.Random(7)
    archives = []
    for i in range(3):
        files = {f"srv/f{j}.txt": (f"line {j}\n" * 400).encode() for j in range(30)}
        files["etc/app.env"] = f"GITLAB_TOKEN=glpat-{rnd(rng, AN, 20)}\n".encode()
        path = tmp_path / f"img{i}.tar"
        docker_save(ImageSpec([("COPY . /", files)], tag=f"t/img{i}:1"), path)
        archives.append(path)
    total = sum(p.stat().st_size for p in archives)
    seen: list[tuple[int, int | None]] = []

    def progress(stats: ScanStats) -> None:
        seen.append((stats.bytes_read, stats.bytes_total))

    for jobs in (1, 2):
        seen.clear()
        Scanner().scan([ImageArchiveSource(p) for p in archives], progress=progress, jobs=jobs)
        assert {t for _r, t in seen} == {total}, "the total covers every archive from the start"
        reads = [r for r, _t in seen]
        assert reads == sorted(reads), "progress never goes back"
        assert reads[-1] == total
    # a directory too
    seen.clear()
    Scanner().scan([PathSource(tmp_path)], progress=progress)
    assert seen[-1] == (total, total)


def _read_all(fd: int, proc: subprocess.Popen[bytes]) -> bytes:
    out = b""
    while True:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                piece = os.read(fd, 65536)
            except OSError:
                break
            if not piece:
                break
            out += piece
        elif proc.poll() is not None:
            break
    return out


def test_progress_bar_on_stderr_when_stdout_is_redirected(tmp_path: Path) -> None:
    rng = random.Random(3)
    files = {f"srv/f{j}.txt": (f"line {j}\n" * 2000).encode() for j in range(200)}
    files["etc/app.env"] = f"GITLAB_TOKEN=glpat-{rnd(rng, AN, 20)}\n".encode()
    archive = tmp_path / "img.tar"
    docker_save(ImageSpec([("COPY . /", files)]), archive)
    report = tmp_path / "report.txt"
    main, child = pty.openpty()
    with report.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vaultside", "scan", "archive", str(archive), "--progress",
             "--jobs", "1", "--format", "json"],
            stdout=out, stderr=child, stdin=subprocess.DEVNULL,
            env={**os.environ, "COLUMNS": "120", "TERM": "xterm"},
        )  # fmt: skip
        os.close(child)
        err = _read_all(main, proc)
        proc.wait(timeout=60)
    os.close(main)
    assert b"scanning" in err, err[-500:]
    text = report.read_text()
    assert text.lstrip().startswith("{") and "scanning" not in text and "\x1b" not in text


def test_default_jobs_follow_the_load(monkeypatch: pytest.MonkeyPatch) -> None:
    from vaultside.cli.commands import scan as scan_cmd

    monkeypatch.setattr(scan_cmd.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(scan_cmd.os, "getloadavg", lambda: (0.3, 0.2, 0.1))
    assert scan_cmd.default_jobs() == 2
    monkeypatch.setattr(scan_cmd.os, "getloadavg", lambda: (2.0, 0.2, 0.1))
    assert scan_cmd.default_jobs() == 1
