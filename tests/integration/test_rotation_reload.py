"""Reload actions run off the re-delivery path: a container labelled
``io.vaultside.on-rotate=restart`` (which Docker takes ~10 s to restart: its PID 1 ignores
SIGTERM) must not delay new files for the other containers, nor make them skip a version.
REAL dockerd, plugin process and server (the plugin test's stack)."""

from __future__ import annotations

import secrets
import time

import pytest

from .stack import SAFE, Stack, api

pytestmark = [pytest.mark.docker, pytest.mark.timeout(240)]

# Prints every distinct content of the file it sees, in order, with the host's uptime
# (one kernel clock for the host and every container).
WATCH = (
    "trap 'echo hup' HUP; last=; while true; do c=$(cat /run/secrets/token); "
    'if [ "$c" != "$last" ]; then echo "seen $c $(cut -d" " -f1 /proc/uptime)"; last=$c; fi; '
    "sleep 0.05; done"
)
LATE = 3.0  # seconds: generous on a loaded 2-core machine; the stall it catches is ~9 s


def _uptime() -> float:
    with open("/proc/uptime") as fh:
        return float(fh.read().split()[0])


def _seen_at(st: Stack, name: str) -> list[tuple[str, float]]:
    """(content, uptime) of every change the container saw, in order."""
    out = st.docker("logs", name).stdout
    seen = [line.split(" ") for line in out.splitlines() if line.startswith("seen ")]
    return [(parts[1], float(parts[2])) for parts in seen]


def _seen(st: Stack, name: str) -> list[str]:
    return [value for value, _ in _seen_at(st, name)]


def _wait(check, timeout: float, what: str) -> float:  # type: ignore[no-untyped-def]
    """Seconds until ``check()`` is true; fails after ``timeout``."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, f"timed out waiting for {what}"
        time.sleep(0.05)
    return time.monotonic() - start


def test_restarting_container_does_not_stall_the_others(stack: Stack) -> None:
    server = stack.server
    versions = [f"rl{i}-{secrets.token_hex(8)}" for i in range(4)]
    api(server, "PUT", "secrets/app/rl", {"data": {"token": versions[0]}})
    opts = {"secret.token": "kv:app/rl#token", "uid": "1000", "gid": "1000"}
    labels = {"slow": "restart", "hup": "signal:HUP", "plain": "none"}
    names = {k: f"rl-{k}-{secrets.token_hex(3)}" for k in labels}
    try:
        for kind, label in labels.items():
            started = stack.docker(
                "run", "-d", "--name", names[kind], "--network", "none", *SAFE,
                "--label", "io.vaultside.role=web", "--label", f"io.vaultside.on-rotate={label}",
                "--mount", stack.mount_arg(stack.volume(f"-{kind}"), opts),
                stack.image, "sh", "-c", WATCH,
            )  # fmt: skip
            assert started.returncode == 0, started.stderr
        for name in names.values():
            _wait(lambda n=name: _seen(stack, n) == versions[:1], 30, f"{name} to start")
        slow_started = stack.docker("inspect", "-f", "{{.State.StartedAt}}", names["slow"]).stdout

        # New versions every 1.5 s, whatever happens to the containers meanwhile.
        others = [names["hup"], names["plain"]]
        put_at: dict[str, float] = {}
        for value in versions[1:]:
            put_at[value] = _uptime()
            api(server, "PUT", "secrets/app/rl", {"data": {"token": value}})
            time.sleep(1.5)  # the slow container's restart (>= 10 s) is under way meanwhile
        _wait(lambda: all(_seen(stack, n)[-1:] == versions[-1:] for n in others), 30, "v3")
        for name in others:  # every version, in order (none skipped), each promptly
            seen = _seen_at(stack, name)
            assert [v for v, _ in seen] == versions, name
            late = [round(at - put_at[v], 2) for v, at in seen[1:]]
            assert max(late) < LATE, (name, late)
        assert "hup" in stack.docker("logs", names["hup"]).stdout

        # The slow one was restarted and holds the newest version.
        _wait(
            lambda: (
                stack.docker("inspect", "-f", "{{.State.StartedAt}}", names["slow"]).stdout
                != slow_started
            ),
            60,
            "the restart",
        )
        _wait(lambda: _seen(stack, names["slow"])[-1:] == versions[-1:], 60, "the new file")
    finally:
        stack.docker("rm", "-f", *names.values())
