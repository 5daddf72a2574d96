"""``vaultside scan``: find leaked credentials in images, containers, archives and directories.

Exit codes (for CI gates): 0 nothing at or above ``--fail-on``; 1 findings at or above it;
2 bad input (corrupt or truncated archive, bad rules/baseline file, bad image reference);
3 registry access denied; 4 image (or platform) not found; 6 Docker engine, registry or
vaultside server unreachable (registry TLS failures too).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from vaultside import errors
from vaultside.cli.render import EXIT_ERROR, EXIT_INTERRUPTED, output_format
from vaultside.scan.base import Finding, Reporter, ScanStats, Severity, Source
from vaultside.scan.detectors.known import KnownValueIndex
from vaultside.scan.filters import default_filters
from vaultside.scan.rulefile import load_rule_file
from vaultside.scan.scanner import Allowlist, Scanner, load_baseline, write_baseline
from vaultside.scan.sources.content import Limits
from vaultside.scan.sources.request import ScanRequest
from vaultside.wiring.scan import SCAN_REPORTERS, build_reporter, scan_sources

if TYPE_CHECKING:  # the rotation outcome types: imported for --rotate-leaked only
    from vaultside.scan.leaks import RotationOutcome

EXIT_FINDINGS = EXIT_ERROR  # described once in vaultside.cli.render.EXIT_CODES
_SEVERITIES = ["info", "low", "medium", "high", "critical", "none"]
_NO_POLICY = "leaked, no rotation policy (not changed)"


def _stack(
    f: Callable[..., Any], opts: Sequence[Callable[[Callable[..., Any]], Callable[..., Any]]]
) -> Callable[..., Any]:
    """``f`` with the options applied as if stacked as decorators in this order."""
    for opt in reversed(opts):
        f = opt(f)
    return f


def _existing_file(flag: str, help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """An option naming a file that must exist."""
    return click.option(flag, type=click.Path(path_type=Path, exists=True), help=help)


def _options(f: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        output_format(*SCAN_REPORTERS, dest="fmt"),
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
        _existing_file(
            "--rules",
            "custom rules TOML: vaultside [[rule]] tables or a gitleaks config ([[rules]]);"
            " unknown keys are an error",
        ),
        _existing_file(
            "--allowlist",
            "TOML accepting findings by rule id, path glob or fingerprint",
        ),
        _existing_file(
            "--baseline",
            "ignore findings whose fingerprints are in this file (from --write-baseline)",
        ),
        click.option(
            "--write-baseline",
            type=click.Path(path_type=Path),
            help="accept every current finding: write their fingerprints here",
        ),
        _existing_file(
            "--known-index",
            "known-value index JSON (from GET /v1/scans/known-index)",
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
            default=None,
            help="worker processes for archives on disk (default: the CPU count, at most 8;"
            " 1 while the load average is at or above the CPU count)",
        ),
        click.option(
            "--progress/--no-progress",
            default=None,
            help="a progress bar for the whole scan, on stderr (default: when stderr is a tty)",
        ),
    ]
    return _stack(f, opts)


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

        return KnownValueIndex.from_json(run_client(lambda c: c.known_index()))
    return None


def _rotate_leaked(findings: Sequence[Finding]) -> list[RotationOutcome]:
    """Rotate-now (on the server) each leaked current managed secret; outcomes, no values."""
    from vaultside.cli.render import run_client
    from vaultside.client import VaultsideClient
    from vaultside.scan.leaks import RotationOutcome, leaked_current

    async def rotate(client: VaultsideClient) -> list[RotationOutcome]:
        out: list[RotationOutcome] = []
        for path, leaked in sorted(leaked_current(findings).items()):
            try:
                run = await client.rotate(path)
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


@contextlib.contextmanager
def _progress_bar() -> Iterator[Callable[[ScanStats], None]]:
    """A progress bar on stderr (stdout stays the report's, even when redirected).

    It shows the whole scan (every archive or image), redrawn at most 10 times a second.
    """
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    with Progress(
        TextColumn("scanning"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TextColumn("{task.fields[files]} files"),
        console=Console(stderr=True),
        transient=True,
        redirect_stdout=False,
        redirect_stderr=False,
    ) as bar:
        task = bar.add_task("scan", total=None, files=0)
        last = 0.0

        def progress(stats: ScanStats) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last < 0.1:
                return
            last = now
            bar.update(
                task,
                completed=stats.bytes_read or stats.bytes_scanned,
                total=stats.bytes_total,
                files=stats.files,
            )

        yield progress


def default_jobs() -> int:
    """Worker processes when ``--jobs`` is not given.

    As many as cores, this process included (``Workers``: it indexes the archive while the
    forked ones scan the first slices, then scans too); one more only added CPU (12k small
    files: 0.49 s of CPU with 3 workers, 0.45 s with 2, 0.39 s with one process). But when
    the machine is already busy (1-minute load average >= cores) no core is idle and the
    split pass and the forks are pure overhead: one process (12k small files, load ~10 on 2
    cores: paired ratio to betterleaks 2.4x with 3 workers, 3.4x with 1).
    """
    cores = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0] >= cores
    except OSError:  # no load average on this platform
        busy = False
    return 1 if busy else min(8, cores)


def _cache_dir() -> Path | None:
    """``$XDG_CACHE_HOME/vaultside`` (else ``~/.cache/vaultside``): the compiled keyword
    database is kept there between runs; None when there is no home to put it in."""
    base = os.environ.get("XDG_CACHE_HOME")
    if base and os.path.isabs(base):  # the XDG spec: a relative value is ignored
        return Path(base) / "vaultside"
    try:
        return Path.home() / ".cache" / "vaultside"
    except RuntimeError:  # no HOME and no passwd entry
        return None


def _reporter(fmt: str, output: Path | None) -> Reporter:
    """The reporter; a table for a terminal gets colours and the terminal's width."""
    return build_reporter(fmt, tty=output is None and sys.stdout.isatty())


def _run(sources: Sequence[Source], opts: dict[str, Any], *, cache: bool = True) -> None:
    """``cache``: keep the compiled keyword database in ``_cache_dir`` (registry scans write
    nothing to disk, so they do without it)."""
    try:
        from_server = opts["known_from_server"] or (
            opts["rotate_leaked"] and opts["known_index"] is None
        )
        rules, rule_file = load_rule_file(opts["rules"])
        scanner = Scanner(
            rules=rules,
            filters=[*default_filters(), rule_file] if rule_file is not None else None,
            known=_known(opts["known_index"], from_server),
            allowlist=Allowlist.load(opts["allowlist"]) if opts["allowlist"] else None,
            baseline=load_baseline(opts["baseline"]) if opts["baseline"] else frozenset(),
            cache_dir=_cache_dir() if cache else None,
        )
        jobs = opts["jobs"] or default_jobs()
        show = opts["progress"] if opts["progress"] is not None else sys.stderr.isatty()
        if show:
            with _progress_bar() as progress:
                result = scanner.scan(sources, progress=progress, jobs=jobs)
        else:
            result = scanner.scan(sources, jobs=jobs)
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
    text = _reporter(opts["fmt"], opts["output"]).render(result.findings, reveal=opts["reveal"])
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
    from vaultside.cli.main import skip_teardown  # here: main imports this module lazily

    skip_teardown()  # everything is written: no module teardown (~15 ms) before the exit
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


def _registry_options(f: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        click.option(
            "--platform",
            metavar="OS/ARCH[/VARIANT]",
            help="which image of a multi-platform index (default: this machine's, linux/…)",
        ),
        click.option(
            "--ca-file",
            type=click.Path(path_type=Path, exists=True, dir_okay=False),
            help="PEM CA bundle to verify the registry's TLS certificate",
        ),
        click.option(
            "--plain-http",
            is_flag=True,
            help="plain http instead of https (loopback registries only)",
        ),
    ]
    return _stack(f, opts)


def _sources(kind: str, targets: Sequence[object], opts: dict[str, Any], **kw: Any) -> list[Source]:
    """The sources of ``kind`` through the scan registry (``vaultside.wiring.scan``)."""
    request = ScanRequest(
        [str(t) for t in targets], limits=Limits(max_depth=opts["max_depth"]), **kw
    )
    try:
        return scan_sources(kind, request)
    except errors.VaultsideError as exc:
        _fail(exc)


def _registry_sources(refs: Sequence[str], opts: dict[str, Any]) -> list[Source]:
    names = ("platform", "ca_file", "plain_http")
    return _sources("registry", refs, opts, options={n: opts.pop(n) for n in names})


@cli.command("image")
@click.argument("names", nargs=-1, required=True)
@click.option("--docker-host", envvar="DOCKER_HOST", help="engine URL (default: DOCKER_HOST)")
@click.option(
    "--remote",
    is_flag=True,
    help="pull NAMES from their registry without a daemon (as 'scan registry')",
)
@_registry_options
@_options
def image_cmd(names: tuple[str, ...], docker_host: str | None, remote: bool, **opts: Any) -> None:
    """Scan local images through the engine: config, history and every layer.

    With --remote, NAMES are registry references (HOST/REPO:TAG) read from the registry.

    \b
    Example:
      vaultside scan image app:latest --format json
    """
    if remote:
        _run(_registry_sources(names, opts), opts, cache=False)
        return
    if opts["platform"] or opts["ca_file"] or opts["plain_http"]:
        raise click.UsageError("--platform, --ca-file and --plain-http need --remote")
    client = _docker(docker_host)
    _run(_sources("image", names, opts, docker=lambda: client), opts)


@cli.command("registry")
@click.argument("refs", nargs=-1, required=True, metavar="HOST/REPO[:TAG|@DIGEST]...")
@_registry_options
@_options
def registry_cmd(refs: tuple[str, ...], **opts: Any) -> None:
    """Scan images straight from a registry, without a Docker engine.

    Speaks the OCI distribution API (Docker v2 and OCI manifests, multi-platform indexes:
    --platform). Layers are streamed and never written to disk. Credentials: the
    VAULTSIDE_REGISTRY_USERNAME and VAULTSIDE_REGISTRY_PASSWORD environment variables, else
    auths.<host>.auth in $DOCKER_CONFIG/config.json (~/.docker/config.json); Bearer token and
    Basic auth. TLS is verified (--ca-file for a private CA); plain http only for loopback.
    Exit codes: 3 access denied, 4 image or platform not found, 6 registry unreachable or TLS
    failure.

    \b
    Example:
      vaultside scan registry registry.example:5000/app:1.0 --platform linux/amd64
    """
    _run(_registry_sources(refs, opts), opts, cache=False)


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
    client = _docker(docker_host)
    _run(
        _sources("containers", (), opts, docker=lambda: client, all_containers=all_containers), opts
    )


@cli.command("archive")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True))
@_options
def archive_cmd(files: tuple[Path, ...], **opts: Any) -> None:
    """Scan image archives offline: docker save tarballs, OCI layouts (tar or directory).

    \b
    Example:
      vaultside scan archive app.tar --format sarif -o scan.sarif
    """
    _run(_sources("archive", files, opts), opts)


@cli.command("path")
@click.argument("dirs", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True))
@_options
def path_cmd(dirs: tuple[Path, ...], **opts: Any) -> None:
    """Scan directories (and archives inside them).

    \b
    Example:
      vaultside scan path ./deploy --baseline .vaultside-baseline.json
    """
    _run(_sources("path", dirs, opts), opts)
