"""Schema-driven fuzzing of the HTTP API with schemathesis: no 5xx, only documented statuses.

Run: ``.venv/bin/python bench/fuzz_api.py [--max-time 120] [--max-examples 100]``
(``make fuzz``). Without ``--addr`` it starts ``vaultside serve --dev`` on loopback in a
temporary directory and stops it at the end. With ``--addr URL`` it fuzzes that server, using
the root token from ``$VAULTSIDE_TOKEN`` (this is how ``tests/security/test_fuzz_api.py`` runs
a small sample against the integration fixture's server).

Two passes run back to back, each with the schemathesis CLI (coverage, fuzzing and stateful
phases, ``not_a_server_error`` and ``status_code_conformance`` checks):

- ``root``: the dev root token;
- ``narrow``: a token whose only policy reads and lists ``secrets/app/*``.

``POST /v1/auth/token/revoke-self`` is left out: it would revoke the pass's own token; so is
``/v1/sys/health``, whose Vault-style ``*code`` overrides return any status asked for.
With ``--audit-log`` (implied when this script starts the server) the server's audit records
are counted too: every request must have exactly one, and the number with a 5xx status is
reported. The last line printed is a JSON summary; the exit status is 1 if any pass found a
failure or the server answered any request with a 5xx.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
# revoke-self would end the pass; /v1/sys/health answers whatever status its Vault-style
# *code query overrides ask for (200-599, by design), covered by test_vault_compat.py.
_EXCLUDED = "revoke-self|/v1/sys/health"
_NARROW_POLICY = {"rules": [{"path": "secrets/app/*", "capabilities": ["read", "list"]}]}


def _schemathesis() -> str:
    found = Path(sys.executable).with_name("schemathesis")
    if found.exists():
        return str(found)
    path = shutil.which("schemathesis")
    if path is None:
        raise SystemExit("schemathesis is not installed (make dev-deps)")
    return path


def _call(addr: str, method: str, path: str, token: str, body: object = None) -> object:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{addr}{path}", data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def narrow_token(addr: str, root: str) -> str:
    """A token whose only policy is read + list on ``secrets/app/*`` (with a secret to read)."""
    _call(addr, "PUT", "/v1/sys/policies/fuzz-narrow", root, _NARROW_POLICY)
    _call(addr, "PUT", "/v1/secrets/app/db", root, {"data": {"password": secrets.token_hex(8)}})
    created = _call(
        addr, "POST", "/v1/auth/token/create", root, {"policies": ["fuzz-narrow"], "ttl": "2h"}
    )
    assert isinstance(created, dict)
    return str(created["auth"]["token"])


def run_pass(
    addr: str, token: str, name: str, max_time: int, max_examples: int, report_dir: Path
) -> dict[str, object]:
    """One schemathesis CLI run; its JSON report's counts and failures."""
    out = report_dir / name
    out.mkdir(parents=True)
    # The token reaches schemathesis through the environment (``${FUZZ_AUTH}`` in its config
    # file), never through a command line other processes can read.
    config = out / "schemathesis.toml"
    config.write_text('headers = { Authorization = "${FUZZ_AUTH}" }\n')
    argv = [
        _schemathesis(), "--config-file", str(config), "run", f"{addr}/v1/openapi.json",
        "--checks", "not_a_server_error,status_code_conformance",
        "--exclude-path-regex", _EXCLUDED,
        "--max-examples", str(max_examples), "--max-time", str(max_time),
        "--workers", "1", "--request-timeout", "15", "--no-color",
        "--generation-database", "none",
        "--report", "json", "--report-json-path", str(out / "report.json"),
    ]  # fmt: skip
    env = {**os.environ, "FUZZ_AUTH": f"Bearer {token}"}
    started = time.monotonic()
    # cwd: schemathesis keeps a crash cache (.schemathesis/) in its working directory.
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=out, check=False)
    report = json.loads((out / "report.json").read_text())
    failures = [
        {k: f.get(k) for k in ("code", "title", "operations", "count")}
        for f in report.get("failures", [])
    ]
    if proc.returncode != 0 and not failures:
        failures.append({"title": "schemathesis exited", "message": proc.stdout[-2000:]})
    return {
        "pass": name,
        "generated": report["test_cases"]["generated"],
        "with_failures": report["test_cases"]["with_failures"],
        "errored": report["test_cases"]["errored"],
        "failures": failures,
        "seconds": round(time.monotonic() - started, 1),
        "exit_code": proc.returncode,
    }


def audit_counts(audit_log: Path) -> dict[str, int]:
    """Records in the audit log, and how many of them carry a 5xx status."""
    records = server_errors = 0
    with audit_log.open() as f:
        for line in f:
            if not line.strip():
                continue
            records += 1
            status = json.loads(line).get("status")
            if isinstance(status, int) and status >= 500:
                server_errors += 1
    return {"audit_records": records, "audit_5xx": server_errors}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_dev_server(workdir: Path) -> tuple[subprocess.Popen[bytes], str, str, Path]:
    """``vaultside serve --dev`` on a free loopback port: (process, addr, root token, audit)."""
    data = workdir / "data"
    data.mkdir(mode=0o700)
    port = _free_port()
    log_path = workdir / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAULTSIDE_")}
    env["VAULTSIDE_DATA_DIR"] = str(data)
    argv = [sys.executable, "-m", "vaultside", "serve", "--dev", "--listen", f"127.0.0.1:{port}"]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir)
    addr = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        if "Root token: " in text:
            token = text.split("Root token: ", 1)[1].split()[0]
            try:
                urllib.request.urlopen(f"{addr}/v1/sys/health", timeout=2).close()
                return proc, addr, token, data / "audit.log"
            except (urllib.error.URLError, OSError):
                pass
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"vaultside did not start:\n{log_path.read_text(errors='replace')[-2000:]}")


def fuzz(
    addr: str, root: str, max_time: int, max_examples: int, audit_log: Path | None
) -> dict[str, object]:
    """Both passes against ``addr``; the summary (``ok`` false on any failure or 5xx)."""
    with tempfile.TemporaryDirectory(prefix="vs-fuzz-") as tmp:
        narrow = narrow_token(addr, root)
        passes = [
            run_pass(addr, root, "root", max_time, max_examples, Path(tmp)),
            run_pass(addr, narrow, "narrow", max_time, max_examples, Path(tmp)),
        ]
    summary: dict[str, object] = {
        "passes": passes,
        "generated": sum(int(p["generated"]) for p in passes),  # type: ignore[call-overload]
    }
    ok = all(not p["failures"] and p["exit_code"] == 0 for p in passes)
    if audit_log is not None:
        counts = audit_counts(audit_log)
        summary.update(counts)
        ok = ok and counts["audit_5xx"] == 0
    summary["ok"] = ok
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--addr", help="fuzz this server (root token from $VAULTSIDE_TOKEN)")
    parser.add_argument("--audit-log", type=Path, help="that server's audit log, to count 5xx")
    parser.add_argument("--max-time", type=int, default=120, help="seconds per pass")
    parser.add_argument("--max-examples", type=int, default=100, help="per operation")
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    if args.addr:
        root = os.environ.get("VAULTSIDE_TOKEN", "")
        if not root:
            raise SystemExit("--addr needs the root token in $VAULTSIDE_TOKEN")
        summary = fuzz(args.addr, root, args.max_time, args.max_examples, args.audit_log)
    else:
        with tempfile.TemporaryDirectory(prefix="vs-fuzz-srv-") as tmp:
            proc, addr, root, audit_log = start_dev_server(Path(tmp))
            try:
                summary = fuzz(addr, root, args.max_time, args.max_examples, audit_log)
            finally:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
    for p in summary["passes"]:  # type: ignore[attr-defined]
        print(
            f"{p['pass']:>6}: {p['generated']} generated, {len(p['failures'])} failure(s), "
            f"{p['seconds']} s"
        )
        for failure in p["failures"][:20]:
            print(f"        {failure}")
    if "audit_records" in summary:
        print(f"audit: {summary['audit_records']} records, {summary['audit_5xx']} with a 5xx")
    print(json.dumps(summary))
    sys.exit(0 if summary["ok"] else 1)


if __name__ == "__main__":
    main()
