"""Several worker processes behind one address: a small synchronous supervisor.

Each worker is ``vaultside serve --worker`` running its own app. TCP workers bind the same
port with ``SO_REUSEPORT`` so the kernel spreads connections; a unix socket is bound once
here and its descriptor inherited. Workers share the SQLite WAL database; token and policy
caches are per process with at most 1 s staleness (see ``vaultside.auth``). Metrics are
aggregated through ``PROMETHEUS_MULTIPROC_DIR``. A worker that dies is restarted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from types import FrameType

from vaultside.api.metrics import MULTIPROC_ENV
from vaultside.api.server import SHUTDOWN_TIMEOUT, Bound, bind_unix, parse_listen, tls_context
from vaultside.config.settings import Settings
from vaultside.errors import UpstreamUnavailableError

log = logging.getLogger(__name__)

_READY_TIMEOUT = 60.0
_RESTART_BACKOFF = 1.0
_MAX_RESTARTS = 10  # within _CRASH_WINDOW seconds
_CRASH_WINDOW = 60.0


def _reserve_port(host: str, port: int) -> socket.socket:
    """A bound (not listening) SO_REUSEPORT socket, so port 0 becomes one shared real port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _can_connect(family: int, address: object) -> bool:
    """True once a worker answers: TCP connects only reach listening workers (the reserved
    socket never listens); the unix socket listens in this process, so it needs a reply."""
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        try:
            probe.connect(address)  # type: ignore[arg-type]
            if family != socket.AF_UNIX:
                return True
            probe.sendall(b"GET /v1/sys/seal-status HTTP/1.0\r\n\r\n")
            return probe.recv(16).startswith(b"HTTP/1.")
        except OSError:
            return False


class Supervisor:
    """Starts, watches, restarts and stops ``count`` worker processes."""

    def __init__(self, settings: Settings, count: int, overrides: dict[str, object]) -> None:
        self.settings = settings
        self.count = count
        self.overrides = overrides
        self.procs: list[subprocess.Popen[bytes]] = []
        self.stopping = False
        self._reserved: socket.socket | None = None
        self._unix: socket.socket | None = None
        self._metrics_dir = settings.data_dir.resolve() / f".metrics-{os.getpid()}"
        self._probe: tuple[int, object] | None = None
        self.bound = Bound(())

    def _prepare(self) -> None:
        cfg = self.settings.server
        # TLS files (and a key others can read) fail here, once, not in every worker.
        tls_context(cfg, self.settings.resolve)
        urls: list[str] = []
        server_over = dict(self.overrides.get("server", {}))  # type: ignore[call-overload]
        if cfg.listen:
            host, port = parse_listen(cfg.listen)
            self._reserved = _reserve_port(host, port)
            port = self._reserved.getsockname()[1]
            server_over["listen"] = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            scheme = "https" if cfg.tls_cert_file else "http"
            shown = f"[{host}]" if ":" in host else host
            urls.append(f"{scheme}://{shown}:{port}")
            probe_host = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104
            family = socket.AF_INET6 if ":" in probe_host else socket.AF_INET
            self._probe = (family, (probe_host, port))
        if cfg.unix_socket is not None:
            path = self.settings.resolve(cfg.unix_socket)
            self._unix = bind_unix(path)
            urls.append(f"unix://{path}")
            self._probe = self._probe or (socket.AF_UNIX, str(path))
        self.overrides = {**self.overrides, "server": server_over}
        self.bound = Bound(tuple(urls))
        shutil.rmtree(self._metrics_dir, ignore_errors=True)
        self._metrics_dir.mkdir(parents=True, mode=0o700)

    def _spawn(self) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "vaultside", "serve", "--worker"]
        cmd += ["--overrides-json", json.dumps(self.overrides)]
        pass_fds: tuple[int, ...] = ()
        if self._unix is not None:
            cmd += ["--unix-fd", str(self._unix.fileno())]
            pass_fds = (self._unix.fileno(),)
        env = {**os.environ, MULTIPROC_ENV: str(self._metrics_dir)}
        return subprocess.Popen(cmd, env=env, pass_fds=pass_fds)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _READY_TIMEOUT
        while time.monotonic() < deadline:
            if self._probe is not None and _can_connect(*self._probe):
                return
            if all(p.poll() is not None for p in self.procs):
                raise UpstreamUnavailableError("every worker exited during startup")
            time.sleep(0.05)
        raise UpstreamUnavailableError("workers did not start listening in time")

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def run(self, on_ready: Callable[[Bound], None] | None = None) -> int:
        """Run until SIGTERM/SIGINT; returns the exit status."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self._prepare()
        try:
            self.procs = [self._spawn() for _ in range(self.count)]
            self._wait_ready()
            log.info(
                "workers ready", extra={"workers": self.count, "urls": ",".join(self.bound.urls)}
            )
            if on_ready is not None:
                on_ready(self.bound)
            restarts: list[float] = []
            while not self.stopping:
                for i, proc in enumerate(self.procs):
                    if proc.poll() is not None and not self.stopping:
                        log.warning("worker exited; restarting", extra={"status": proc.returncode})
                        now = time.monotonic()
                        restarts = [t for t in restarts if now - t < _CRASH_WINDOW] + [now]
                        if len(restarts) > _MAX_RESTARTS:
                            # A crash loop (bad config, lost database): stop rather than spin.
                            log.error("workers keep exiting; giving up")
                            return 1
                        time.sleep(_RESTART_BACKOFF)
                        self.procs[i] = self._spawn()
                time.sleep(0.2)
            return 0
        finally:
            self._stop_all()

    def _stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + SHUTDOWN_TIMEOUT + 5
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for sock in (self._reserved, self._unix):
            if sock is not None:
                sock.close()
        if self._unix is not None and self.settings.server.unix_socket is not None:
            with contextlib.suppress(FileNotFoundError):
                self.settings.resolve(self.settings.server.unix_socket).unlink()
        shutil.rmtree(self._metrics_dir, ignore_errors=True)
