"""Re-delivery: a running container that mounts a rotated secret through the volume plugin
gets the new file (atomically, on its tmpfs) and its SIGHUP, and vaultside shows the version
the container holds. REAL dockerd, plugin process and server (the plugin test's stack)."""

from __future__ import annotations

import hashlib
import time

import pytest

from .stack import SAFE, Stack, api

pytestmark = [pytest.mark.docker, pytest.mark.timeout(180)]

SCRIPT = (
    "trap 'echo got-hup $(sha256sum /run/secrets/token | cut -c1-64)' HUP; "
    "echo started; while true; do sleep 0.1; done"
)


def wait_for(check, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_running_container_gets_new_file_and_hup(stack: Stack) -> None:
    server = stack.server
    # The role's token may report which versions its containers hold.
    api(server, "PUT", "sys/policies/web", {"rules": [
        {"path": "secrets/app/*", "capabilities": ["read"]},
        {"path": "consumers/*", "capabilities": ["update"]},
    ]})  # fmt: skip
    policy = {
        "every": "30d",
        "generator": {"kind": "token", "prefix": "rot_", "length": 40},
        "target": {"kind": "kv"},
    }
    api(server, "PUT", "rotation/policies/app/api", policy)
    volume = stack.volume("-rot")
    opts = {"secret.token": "kv:app/api#token", "uid": "1000", "gid": "1000"}
    name = f"rot-{volume}"
    started = stack.docker(
        "run", "-d", "--name", name, "--network", "none", *SAFE,
        "--label", "io.vaultside.role=web", "--label", "io.vaultside.on-rotate=signal:HUP",
        "--mount", stack.mount_arg(volume, opts), stack.image, "sh", "-c", SCRIPT,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    try:
        wait_for(lambda: "started" in stack.docker("logs", name).stdout, 30, "the container")
        before = stack.docker("exec", name, "cat", "/run/secrets/token").stdout
        assert before == stack.values["token"]

        run = api(server, "POST", "rotation/rotate/app/api")["run"]
        assert run["result"] == "ok"
        t0 = time.monotonic()
        new = api(server, "GET", "secrets/app/api")["data"]["token"]
        assert new.startswith("rot_") and new != before
        wait_for(
            lambda: stack.docker("exec", name, "cat", "/run/secrets/token").stdout == new,
            10,
            "the new file in the container",
        )
        digest = hashlib.sha256(new.encode()).hexdigest()
        wait_for(lambda: f"got-hup {digest}" in stack.docker("logs", name).stdout, 10, "the HUP")
        elapsed = time.monotonic() - t0
        assert elapsed < 5, elapsed
        mode = stack.docker("exec", name, "stat", "-c", "%a %u", "/run/secrets/token").stdout
        assert mode.split() == ["400", "1000"]

        def holds_current() -> dict | None:  # type: ignore[type-arg]
            status = api(server, "GET", "rotation/status/app/api")
            mine = [c for c in status["consumers"] if c["kind"] == "plugin"]
            return status if mine and all(c["current"] for c in mine) else None

        status = wait_for(holds_current, 10, "the consumer report")
        assert status["state"]["version"] == run["version"]
    finally:
        stack.docker("rm", "-f", name)
