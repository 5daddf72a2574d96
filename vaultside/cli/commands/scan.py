"""``vaultside scan``: find leaked credentials in images, containers, archives and directories.

Exit codes (for CI gates): 0 nothing at or above ``--fail-on``; 1 findings at or above it;
2 bad input (corrupt or truncated archive, bad rules/baseline file); 4 image not found;
6 Docker engine or vaultside server unreachable.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import click

from vaultside import errors
from vaultside.cli.render import EXIT_ERROR, EXIT_INTERRUPTED, output_format
from vaultside.scan.base import Finding, ScanStats, Severity, Source
from vaultside.scan.detectors.known import KnownValueIndex
from vaultside.scan.detectors.rules import rules_with_custom
from vaultside.scan.leaks import RotationOutcome, leaked_current
from vaultside.scan.reporters.json import JsonReporter
from vaultside.scan.reporters.sarif import SarifReporter
from vaultside.scan.reporters.table import TableReporter
from vaultside.scan.scanner import Allowlist, Scanner, load_baseline, write_baseline
from vaultside.scan.sources.content import Limits

EXIT_FINDINGS = EXIT_ERROR  # described once in vaultside.cli.render.EXIT_CODES
_REPORTERS = {"table": TableReporter, "json": JsonReporter, "sarif": SarifReporter}
_SEVERITIES = ["info", "low", "medium", "high", "critical", "none"]
_NO_POLICY = "leaked, no rotation policy (not changed)"


def _options(f: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        output_format(*_REPORTERS, dest="fmt"),
        click.option(
            "--output", "-o", type=click.Path(path_type=Path), help="write the report here"
        ),
        click.option(
            "--fail-on",
            type=click.Choice(_SEVERITIES),
            default="low",
            show_default=True,
            help="exit 1 if any finding is at least this severe ('none': never)",
        ),
        click.option("--reveal", is_flag=True, help="show whole secret values (triage only)"),
        click.option(
            "--rules", type=click.Path(path_type=Path, exists=True), help="custom rules TOML"
        ),
        click.option(
            "--allowlist",
            type=click.Path(path_type=Path, exists=True),
            help="TOML accepting findings by rule id, path glob or fingerprint",
        ),
        click.option(
            "--baseline",
            type=click.Path(path_type=Path, exists=True),
            help="ignore findings whose fingerprints are in this file (from --write-baseline)",
        ),
        click.option(
            "--write-baseline",
            type=click.Path(path_type=Path),
            help="accept every current finding: write their fingerprints here",
        ),
        click.option(
            "--known-index",
            type=click.Path(path_type=Path, exists=True),
            help="known-value index JSON (from GET /v1/scans/known-index)",
        ),
        click.option(
            "--known-from-server",
            is_flag=True,
            help="fetch the known-value index from VAULTSIDE_ADDR with VAULTSIDE_TOKEN",
        ),
        click.option(
            "--rotate-leaked",
            is_flag=True,
            help="ask VAULTSIDE_ADDR to rotate each leaked CURRENT managed secret that has a"
            " rotation policy (implies --known-from-server)",
        ),
        click.option(
            "--max-depth",
            type=click.IntRange(0, 10),
            default=3,
            show_default=True,
            help="how deep to open archives inside archives",
        ),
        click.option(
            "--jobs",
            "-j",
            type=click.IntRange(1, 64),
            # One more worker than cores: a worker waiting on a read or on sending its
            # results leaves a core idle otherwise (220 MB archive, 2 cores: 0.60 s -> 0.53 s).
            default=min(8, (os.cpu_count() or 1) + 1),
            show_default="cores + 1, at most 8",
            help="worker processes for archives on disk",
        ),
        click.option(
            "--progress/--no-progress", default=None, help="default: when stderr is a tty"
        ),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _fail(exc: errors.VaultsideError) -> NoReturn:
    # Imported here: the client stack (aiohttp) is only needed on error or --known-from-server.
    from vaultside.cli.render import exit_code_for, fail

    fail("; ".join(exc.public_messages()), exit_code_for(exc))


def _known(index_file: Path | None, from_server: bool) -> KnownValueIndex | None:
    if index_file is not None:
        try:
            return KnownValueIndex.from_json(json.loads(index_file.read_text()))
        except ValueError as exc:
            raise errors.InvalidRequestError(f"{index_file}: not JSON") from exc
    if from_server:
        from vaultside.cli.render import run_client
        from vaultside.client import VaultsideClient

        async def fetch(client: VaultsideClient) -> dict[str, Any]:
            _status, body, _h = await client.request("GET", "scans/known-index")
            return body

        return KnownValueIndex.from_json(run_client(fetch))
    return None


def _rotate_leaked(findings: Sequence[Finding]) -> list[RotationOutcome]:
    """Rotate-now (on the server) each leaked current managed secret; outcomes, no values."""
    from urllib.parse import quote

    from vaultside.cli.render import run_client
    from vaultside.client import VaultsideClient

    async def rotate(client: VaultsideClient) -> list[RotationOutcome]:
        out: list[RotationOutcome] = []
        for path, leaked in sorted(leaked_current(findings).items()):
            try:
                _s, body, _h = await client.request(
                    "POST", f"rotation/rotate/{quote(path, safe='/')}"
                )
            except errors.NotFoundError:
                out.append(RotationOutcome(path, leaked, "no-policy", note=_NO_POLICY))
                continue
            except errors.PermissionDeniedError:
                note = f"needs the rotate capability on rotation/{path}"
                out.append(RotationOutcome(path, leaked, "denied", note=note))
                continue
            except errors.ConflictError:
                note = "a rotation is already running"
                out.append(RotationOutcome(path, leaked, "conflict", note=note))
                continue
            run = body.get("run", {})
            if run.get("result") == "ok":
                out.append(RotationOutcome(path, leaked, "rotated", version=run.get("version")))
            else:
                note = f"rotation failed at {run.get('step')}: {run.get('error')}"
                out.append(RotationOutcome(path, leaked, "failed", note=note))
        return out

    return run_client(rotate)


def _echo_rotations(outcomes: Sequence[RotationOutcome]) -> None:
    for o in outcomes:
        if o.outcome == "rotated":
            click.echo(f"rotated {o.path}: leaked v{o.leaked_version}, now v{o.version}", err=True)
        else:
            click.echo(f"not rotated {o.path} (v{o.leaked_version}): {o.note}", err=True)


def _run(sources: Sequence[Source], opts: dict[str, Any]) -> None:
    try:
        from_server = opts["known_from_server"] or (
            opts["rotate_leaked"] and opts["known_index"] is None
        )
        scanner = Scanner(
            rules=rules_with_custom(opts["rules"]),
            known=_known(opts["known_index"], from_server),
            allowlist=Allowlist.load(opts["allowlist"]) if opts["allowlist"] else None,
            baseline=load_baseline(opts["baseline"]) if opts["baseline"] else frozenset(),
        )
        show = opts["progress"] if opts["progress"] is not None else sys.stderr.isatty()
        if show:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TransferSpeedColumn,
            )

            with Progress(
                TextColumn("scanning"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TextColumn("{task.fields[files]} files"),
                console=None,
                transient=True,
                redirect_stdout=False,
            ) as bar:
                task = bar.add_task("scan", total=None, files=0)

                def progress(stats: ScanStats) -> None:
                    bar.update(
                        task,
                        completed=stats.bytes_read or stats.bytes_scanned,
                        total=stats.bytes_total,
                        files=stats.files,
                    )

                result = scanner.scan(sources, progress=progress, jobs=opts["jobs"])
        else:
            result = scanner.scan(sources, jobs=opts["jobs"])
    except errors.VaultsideError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        click.echo("Error: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    for w in result.stats.warnings[:20]:
        click.echo(f"warning: {w}", err=True)
    if opts["rotate_leaked"]:
        _echo_rotations(_rotate_leaked(result.findings))
    if opts["write_baseline"] is not None:
        write_baseline(opts["write_baseline"], result.findings)
        click.echo(
            f"wrote {len(result.findings)} fingerprint(s) to {opts['write_baseline']}", err=True
        )
    text = _REPORTERS[opts["fmt"]]().render(result.findings, reveal=opts["reveal"])
    if opts["output"] is not None:
        opts["output"].write_text(text if text.endswith("\n") else text + "\n")
    else:
        click.echo(text, nl=not text.endswith("\n"))
    s = result.stats
    click.echo(
        f"scanned {s.files} file(s), {s.bytes_scanned / 1e6:.1f} MB of text, {s.layers} layer(s);"
        f" {len(result.findings)} finding(s), {result.suppressed} suppressed",
        err=True,
    )
    if opts["fail_on"] != "none" and opts["write_baseline"] is None:
        floor = Severity.parse(opts["fail_on"])
        if any(f.severity >= floor for f in result.findings):
            sys.exit(EXIT_FINDINGS)


def _docker(docker_host: str | None) -> Any:
    from vaultside.scan.sources.container import docker_client

    try:
        return docker_client(docker_host)
    except errors.VaultsideError as exc:
        _fail(exc)


@click.group("scan")
def cli() -> None:
    """Find plaintext credentials (and vaultside-managed secrets) where containers leak them."""


@cli.command("image")
@click.argument("names", nargs=-1, required=True)
@click.option("--docker-host", envvar="DOCKER_HOST", help="engine URL (default: DOCKER_HOST)")
@_options
def image_cmd(names: tuple[str, ...], docker_host: str | None, **opts: Any) -> None:
    """Scan local images through the engine: config, history and every layer.

    \b
    Example:
      vaultside scan image app:latest --format json
    """
    from vaultside.scan.sources.image import ImageSource

    client = _docker(docker_host)
    limits = Limits(max_depth=opts["max_depth"])
    _run([ImageSource(client, n, limits=limits) for n in names], opts)


@cli.command("containers")
@click.option("--all", "all_containers", is_flag=True, help="stopped containers too")
@click.option("--docker-host", envvar="DOCKER_HOST", help="engine URL (default: DOCKER_HOST)")
@_options
def containers_cmd(all_containers: bool, docker_host: str | None, **opts: Any) -> None:
    """Scan containers: env, command and args, labels, and security posture.

    \b
    Example:
      vaultside scan containers --all --fail-on high
    """
    from vaultside.scan.sources.container import ContainerSource

    _run([ContainerSource(_docker(docker_host), all_containers=all_containers)], opts)


@cli.command("archive")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True))
@_options
def archive_cmd(files: tuple[Path, ...], **opts: Any) -> None:
    """Scan image archives offline: docker save tarballs, OCI layouts (tar or directory).

    \b
    Example:
      vaultside scan archive app.tar --format sarif -o scan.sarif
    """
    from vaultside.scan.sources.archive import ImageArchiveSource

    limits = Limits(max_depth=opts["max_depth"])
    _run([ImageArchiveSource(f, limits=limits) for f in files], opts)


@cli.command("path")
@click.argument("dirs", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True))
@_options
def path_cmd(dirs: tuple[Path, ...], **opts: Any) -> None:
    """Scan directories (and archives inside them).

    \b
    Example:
      vaultside scan path ./deploy --baseline .vaultside-baseline.json
    """
    from vaultside.scan.sources.path import PathSource

    limits = Limits(max_depth=opts["max_depth"])
    _run([PathSource(d, limits=limits) for d in dirs], opts)
