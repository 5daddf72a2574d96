"""A dedicated Docker engine (Debian's dockerd) with its own socket, data root and exec root."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import docker

from .process import (
    ServiceUnavailable,
    log_tail,
    remove_tree,
    short_tempdir,
    spawn,
    terminate,
    wait_until,
)

DOCKERD = "/usr/sbin/dockerd"
BUSYBOX_TAG = "vaultside-test/busybox:latest"
_BUSYBOX_DOCKERFILE = (
    'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox","--install","-s","/bin"]\n'
)


def _ping(sock: Path) -> bool:
    client = docker.APIClient(base_url=f"unix://{sock}", version="auto", timeout=2)
    try:
        return bool(client.ping())
    finally:
        client.close()


@dataclass
class DockerEngine:
    """A running dockerd; ``client`` talks to it, ``env`` points the docker CLI at it.

    Started with ``--bridge=none --iptables=false`` so several engines (one per test session
    of each engineer) never fight over ``docker0`` or iptables chains: containers get
    ``--network none`` by default, and ``--network host`` works.
    """

    root: Path
    proc: subprocess.Popen[bytes] | None = None
    client: docker.DockerClient = field(init=False)

    @property
    def socket_path(self) -> Path:
        """The engine's unix socket."""
        return self.root / "docker.sock"

    @property
    def base_url(self) -> str:
        """``unix:///.../docker.sock``."""
        return f"unix://{self.socket_path}"

    @property
    def data_root(self) -> Path:
        """The engine's ``--data-root``."""
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        """dockerd's log file."""
        return self.root / "dockerd.log"

    @property
    def env(self) -> dict[str, str]:
        """Environment for subprocesses (docker CLI, vaultside) that should use this engine."""
        return {**os.environ, "DOCKER_HOST": self.base_url}

    @classmethod
    def start(cls) -> DockerEngine:
        """Start dockerd and wait until ``/_ping`` answers (about 2-5 s)."""
        if not Path(DOCKERD).exists():
            raise ServiceUnavailable(f"{DOCKERD} not found (apt-get install docker.io)")
        if os.geteuid() != 0:
            raise ServiceUnavailable("dockerd needs root")
        engine = cls(root=short_tempdir("docker"))
        argv = [
            DOCKERD,
            "--host", engine.base_url,
            "--data-root", str(engine.data_root),
            "--exec-root", str(engine.root / "exec"),
            "--pidfile", str(engine.root / "docker.pid"),
            "--bridge=none",
            "--iptables=false",
            "--ip-masq=false",
            "--shutdown-timeout=2",
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
        try:
            engine.proc = spawn(argv, engine.log_path, env=env, cwd=engine.root)
            wait_until(
                lambda: _ping(engine.socket_path),
                timeout=60,
                what="dockerd",
                proc=engine.proc,
                log_path=engine.log_path,
            )
            engine.client = docker.DockerClient(base_url=engine.base_url, version="auto")
        except BaseException:
            engine.close()
            raise
        return engine

    def close(self) -> None:
        """Remove containers, stop dockerd, unmount what it left and delete the temp dir."""
        if self.proc is not None and self.proc.poll() is None:
            client = getattr(self, "client", None)
            if client is not None:
                try:
                    for container in client.containers.list(all=True):
                        container.remove(force=True)
                except Exception:
                    pass  # best effort: dockerd's own shutdown stops what is left
                client.close()
        terminate(self.proc, grace=30)
        remove_tree(self.root)


def build_busybox_image(engine: DockerEngine) -> str:
    """Build the FROM-scratch busybox test image in ``engine``; return its tag."""
    busybox = shutil.which("busybox", path="/bin:/usr/bin")
    if busybox is None:
        raise ServiceUnavailable("busybox not found (apt-get install busybox-static)")
    context = engine.root / "busybox-context"
    context.mkdir(exist_ok=True)
    shutil.copy2(busybox, context / "busybox")
    (context / "Dockerfile").write_text(_BUSYBOX_DOCKERFILE)
    try:
        engine.client.images.build(path=str(context), tag=BUSYBOX_TAG, rm=True, forcerm=True)
        out = engine.client.containers.run(
            BUSYBOX_TAG, ["echo", "busybox-ok"], network_mode="none", remove=True
        )
    except docker.errors.DockerException as exc:
        raise ServiceUnavailable(
            f"building {BUSYBOX_TAG} failed (is {busybox} the static busybox from "
            f"busybox-static?): {exc}\n{log_tail(engine.log_path, 10)}"
        ) from exc
    finally:
        shutil.rmtree(context, ignore_errors=True)
    if b"busybox-ok" not in out:
        raise ServiceUnavailable(f"{BUSYBOX_TAG} does not run: {out!r}")
    return BUSYBOX_TAG
