"""A throwaway PostgreSQL cluster (Debian's binaries) made with initdb in a temp dir."""

from __future__ import annotations

import os
import pwd
import re
import secrets
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from .process import (
    ServiceUnavailable,
    free_port,
    remove_tree,
    short_tempdir,
    spawn,
    start_on_free_port,
    terminate,
    wait_until,
)

_PG_ROOT = Path("/usr/lib/postgresql")


def find_pg_bin() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` that has ``initdb``."""
    versions = sorted(
        (p for p in _PG_ROOT.glob("*/bin") if (p / "initdb").is_file()),
        key=lambda p: [int(x) for x in re.findall(r"\d+", p.parent.name)],
    )
    if not versions:
        raise ServiceUnavailable(f"no initdb under {_PG_ROOT} (apt-get install postgresql)")
    return versions[-1]


@dataclass
class PostgresCluster:
    """``postgres`` on 127.0.0.1 with scram-sha-256 password auth; ``.stop()``/``.start()``.

    As root, every PostgreSQL binary runs as the ``postgres`` OS user (initdb refuses root).
    Data survives ``stop()``/``start()``; ``close()`` deletes it.
    """

    root: Path
    bin: Path
    port: int
    user: str
    password: str
    run_as: str | None
    durable: bool = False
    proc: subprocess.Popen[bytes] | None = None

    host = "127.0.0.1"

    @property
    def dsn(self) -> str:
        """Superuser DSN with password, e.g. ``postgresql://postgres:pw@127.0.0.1:5433/postgres``."""
        return (
            f"postgresql://{quote(self.user)}:{quote(self.password)}"
            f"@{self.host}:{self.port}/postgres"
        )

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        """The server log."""
        return self.root / "postgres.log"

    def __repr__(self) -> str:
        return f"PostgresCluster(host={self.host!r}, port={self.port}, user={self.user!r})"

    @classmethod
    def create(cls, *, durable: bool = False) -> PostgresCluster:
        """initdb a new cluster, start it and wait until it accepts connections.

        ``durable=False`` (tests) runs with ``fsync=off``; benchmarks pass ``durable=True``.
        """
        run_as = None
        if os.geteuid() == 0:
            run_as = "postgres"
            try:
                pwd.getpwnam(run_as)
            except KeyError as exc:
                raise ServiceUnavailable(
                    "no 'postgres' OS user (apt-get install postgresql)"
                ) from exc
        cluster = cls(
            root=short_tempdir("pg"),
            bin=find_pg_bin(),
            port=free_port(),
            user="postgres",
            password=secrets.token_urlsafe(18),
            run_as=run_as,
            durable=durable,
        )
        try:
            pwfile = cluster.root / "pwfile"
            pwfile.write_text(cluster.password + "\n")
            pwfile.chmod(0o600)
            (cluster.root / "sock").mkdir()
            for path in (cluster.root, pwfile, cluster.root / "sock"):
                cluster._give_to_server_user(path)
            initdb = [
                str(cluster.bin / "initdb"),
                "-D", str(cluster.data_dir),
                "-U", cluster.user,
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ]  # fmt: skip
            init = subprocess.run(
                initdb,
                cwd=cluster.root,
                user=run_as,
                group=run_as,
                extra_groups=[] if run_as else None,
                capture_output=True,
                check=False,
            )
            pwfile.unlink()
            if init.returncode != 0:
                raise ServiceUnavailable(f"initdb failed: {init.stderr.decode(errors='replace')}")
            start_on_free_port(cluster)
        except BaseException:
            cluster.close()
            raise
        return cluster

    def _give_to_server_user(self, path: Path) -> None:
        if self.run_as is not None:
            entry = pwd.getpwnam(self.run_as)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _ready(self) -> bool:
        result = subprocess.run(
            [str(self.bin / "pg_isready"), "-h", self.host, "-p", str(self.port), "-t", "1"],
            capture_output=True,
            check=False,
        )
        return result.returncode == 0

    def start(self) -> None:
        """Start the server (same port, same data) and wait until it accepts connections."""
        if self.proc is not None and self.proc.poll() is None:
            return
        argv = [
            str(self.bin / "postgres"),
            "-D", str(self.data_dir),
            "-p", str(self.port),
            "-c", f"listen_addresses={self.host}",
            "-c", f"unix_socket_directories={self.root / 'sock'}",
            "-c", f"fsync={'on' if self.durable else 'off'}",
            "-c", "max_connections=100",
        ]  # fmt: skip
        self.log_path.touch()
        self._give_to_server_user(self.log_path)
        self.proc = spawn(argv, self.log_path, cwd=self.root, user=self.run_as)
        wait_until(
            self._ready, timeout=60, what="PostgreSQL", proc=self.proc, log_path=self.log_path
        )

    def stop(self) -> None:
        """Fast shutdown (SIGINT): clients are disconnected, data stays."""
        terminate(self.proc, sig=signal.SIGINT, grace=30)

    def close(self) -> None:
        """Stop and delete the cluster."""
        self.stop()
        remove_tree(self.root)
