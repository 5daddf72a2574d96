"""JWT auth against a LIVE ``vaultside serve``: Kubernetes-shaped ServiceAccount tokens minted
with PyJWT, keys served by a loopback JWKS/OIDC-discovery server or read from a JWKS file,
and a real ``vaultside sidecar --auth jwt`` that survives the projected token's rotation."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.k8s_tokens import ISSUER, Minter, SigningKey, ec_key, jwks, rsa_key, sign, unsigned
from vaultside.inject import tmpfs

from .services.process import remove_tree, short_tempdir, spawn, terminate, wait_until
from .services.vaultside_server import VaultsideServer, VaultsideServerFactory

ROLE = {
    "policies": ["app-read"],
    "ttl": "10m",
    "bound_service_account_names": ["web"],
    "bound_service_account_namespaces": ["apps"],
}


class KeyServer:
    """A loopback HTTP server for ``/jwks`` and ``/.well-known/openid-configuration``."""

    def __init__(self) -> None:
        self.docs: dict[str, Any] = {}
        self.hits: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits.append(self.path)
                doc = outer.docs.get(self.path)
                body = json.dumps(doc).encode() if doc is not None else b"{}"
                self.send_response(200 if doc is not None else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def call(
    server: VaultsideServer, method: str, path: str, body: Any = None, token: str | None = None
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(
        f"{server.addr}/v1/{path}",
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers=headers,
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else {}
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return exc.code, json.loads(raw) if raw else {}


def setup_role(server: VaultsideServer) -> None:
    root = server.root_token
    rules = {"rules": [{"path": "secrets/app/*", "capabilities": ["read"]}]}
    assert call(server, "PUT", "sys/policies/app-read", rules, root)[0] == 204
    assert call(server, "PUT", "auth/jwt/roles/web", ROLE, root)[0] == 204


def login(server: VaultsideServer, jwt: str) -> tuple[int, dict[str, Any]]:
    return call(server, "POST", "auth/jwt/login", {"role": "web", "jwt": jwt})


def audit_records(server: VaultsideServer) -> list[dict[str, Any]]:
    lines = (server.data_dir / "audit.log").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("path") == "/v1/auth/jwt/login"]


@pytest.fixture
def keys() -> Iterator[KeyServer]:
    server = KeyServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def key() -> SigningKey:
    return rsa_key()


@pytest.fixture
def url_server(
    vaultside_server: VaultsideServerFactory, keys: KeyServer, key: SigningKey
) -> VaultsideServer:
    keys.docs["/openid/v1/jwks"] = jwks(key)
    server = vaultside_server(
        VAULTSIDE_AUTH__JWT__ISSUER=ISSUER,
        VAULTSIDE_AUTH__JWT__JWKS_URL=keys.url + "/openid/v1/jwks",
        VAULTSIDE_AUTH__JWT__JWKS_REFETCH_INTERVAL="0",
        VAULTSIDE_AUDIT__SUMMARY_INTERVAL="0",  # every refusal gets its own record
    )
    setup_role(server)
    return server


def test_a_service_account_token_logs_in(url_server: VaultsideServer, key: SigningKey) -> None:
    status, body = login(url_server, Minter(key).mint())
    assert status == 200, body
    token = body["auth"]["token"]
    status, info = call(url_server, "GET", "auth/token/lookup-self", token=token)
    assert status == 200
    data = info["data"]
    assert data["policies"] == ["app-read", "default"] and data["ttl"] == 600
    assert data["meta"]["role"] == "web"
    assert data["meta"]["sub"] == "system:serviceaccount:apps:web"
    (record,) = audit_records(url_server)
    assert record["status"] == 200 and record["accessor"] == body["auth"]["accessor"]


def test_bad_tokens_are_refused_and_audited(url_server: VaultsideServer, key: SigningKey) -> None:
    minter = Minter(key)
    cases = {
        "audience": minter.mint(aud=["kubernetes"]),
        "expired": minter.mint(exp=int(minter.claims()["iat"]) - 120),
        "issuer": minter.mint(iss="https://evil.example"),
        "unknown key": sign(rsa_key(), minter.claims()),
        "algorithm": unsigned(minter.claims(), key.kid),
        "namespace": minter.mint(namespace="kube-system"),
    }
    for reason, jwt in cases.items():
        status, body = login(url_server, jwt)
        assert status == 403, (reason, body)
        assert reason in body["errors"][0], (reason, body)
    records = audit_records(url_server)
    assert len(records) == len(cases)
    for record, reason in zip(records, cases, strict=True):
        assert record["status"] == 403 and reason in record["error"], record
        assert record["accessor"] is None
    audit = (url_server.data_dir / "audit.log").read_text() + url_server.output()
    for jwt in cases.values():
        assert jwt.split(".")[1] not in audit  # SECURITY: never the JWT, nor its payload


def test_jwks_rotation_at_the_url_is_picked_up(
    url_server: VaultsideServer, keys: KeyServer, key: SigningKey
) -> None:
    assert login(url_server, Minter(key).mint())[0] == 200
    new = ec_key()
    jwt = Minter(new).mint()
    assert login(url_server, jwt)[0] == 403
    keys.docs["/openid/v1/jwks"] = jwks(key, new)  # the issuer rotates its signing key
    assert login(url_server, jwt)[0] == 200
    keys.docs["/openid/v1/jwks"] = jwks(new)  # ... and retires the old one
    assert login(url_server, Minter(new).mint())[0] == 200


def test_oidc_discovery_of_the_issuer(
    vaultside_server: VaultsideServerFactory, keys: KeyServer, key: SigningKey
) -> None:
    keys.docs["/.well-known/openid-configuration"] = {
        "issuer": keys.url,
        "jwks_uri": keys.url + "/openid/v1/jwks",
    }
    keys.docs["/openid/v1/jwks"] = jwks(key)
    server = vaultside_server(
        VAULTSIDE_AUTH__JWT__ISSUER=keys.url, VAULTSIDE_AUTH__JWT__DISCOVERY="true"
    )
    setup_role(server)
    assert login(server, Minter(key, issuer=keys.url).mint())[0] == 200
    assert login(server, Minter(key).mint())[0] == 403  # another issuer
    assert keys.hits[:2] == ["/.well-known/openid-configuration", "/openid/v1/jwks"]


def test_jwks_file_rotation_is_picked_up(
    vaultside_server: VaultsideServerFactory, tmp_path: Path, key: SigningKey
) -> None:
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(jwks(key)))
    server = vaultside_server(
        VAULTSIDE_AUTH__JWT__ISSUER=ISSUER, VAULTSIDE_AUTH__JWT__JWKS_FILE=str(jwks_file)
    )
    setup_role(server)
    assert login(server, Minter(key).mint())[0] == 200
    new = ec_key()
    assert login(server, Minter(new).mint())[0] == 403
    tmp = tmp_path / "jwks.json.tmp"
    tmp.write_text(json.dumps(jwks(key, new), indent=1))
    os.replace(tmp, jwks_file)
    assert login(server, Minter(new).mint())[0] == 200


@pytest.fixture
def shared() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    root = short_tempdir("jwtside")
    out = root / "out"
    tmpfs.mount_tmpfs(out, size_bytes=1 << 20, uid=os.getuid(), gid=os.getgid())
    try:
        yield out
    finally:
        tmpfs.wipe_and_unmount(out)
        remove_tree(root)


def test_sidecar_logs_in_with_a_projected_token_and_survives_rotation(
    url_server: VaultsideServer, key: SigningKey, shared: Path, tmp_path: Path
) -> None:
    root = url_server.root_token
    first = f"p{secrets.token_hex(12)}"
    assert call(url_server, "PUT", "secrets/app/db", {"data": {"password": first}}, root)[0] == 200
    projected = tmp_path / "tokens" / "vaultside"
    projected.parent.mkdir()
    minter = Minter(key)
    jwt1 = minter.mint()
    projected.write_text(jwt1)
    ready, log = tmp_path / "ready", tmp_path / "sidecar.log"
    argv = [
        sys.executable, "-m", "vaultside", "sidecar", "--dir", str(shared),
        "--addr", url_server.addr, "--auth", "jwt", "--role", "web",
        "--jwt-file", str(projected), "--secret", "password=kv:app/db#password",
        "--ready-file", str(ready), "--interval", "0.1",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAULTSIDE_")}
    proc = spawn(argv, log, env=env)
    try:
        wait_until(ready.exists, timeout=30, what="sidecar ready", proc=proc, log_path=log)
        assert (shared / "password").read_text() == first
        assert len(audit_records(url_server)) == 1
        # The kubelet rotates the projected token: a new file swapped in atomically.
        jwt2 = minter.mint()
        staging = projected.with_name("..2026_12_03")
        staging.write_text(jwt2)
        os.replace(staging, projected)
        wait_until(
            lambda: len(audit_records(url_server)) == 2,
            timeout=15, what="a second login after rotation", proc=proc, log_path=log,
        )  # fmt: skip
        second = f"p{secrets.token_hex(12)}"
        status, _ = call(url_server, "PUT", "secrets/app/db", {"data": {"password": second}}, root)
        assert status == 200
        wait_until(
            lambda: (shared / "password").read_text() == second,
            timeout=15, what="re-render after rotation", proc=proc, log_path=log,
        )  # fmt: skip
    finally:
        terminate(proc, grace=10)
    assert proc.returncode == 0, log.read_text()
    text = log.read_text()
    assert text.count("logged in with the ServiceAccount token") == 2, text
    for value in (first, second, jwt1, jwt2, jwt1.split(".")[1]):
        assert value not in text
    assert all(r["status"] == 200 for r in audit_records(url_server))
    lines = (url_server.data_dir / "audit.log").read_text().splitlines()
    revokes = [r for r in map(json.loads, lines) if r.get("path") == "/v1/auth/token/revoke-self"]
    assert [r["status"] for r in revokes] == [204]  # the sidecar gave its token up on exit


def test_cli_manages_roles_and_logs_in(
    url_server: VaultsideServer, key: SigningKey, tmp_path: Path
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VAULTSIDE_")},
        "VAULTSIDE_ADDR": url_server.addr,
        "VAULTSIDE_TOKEN": url_server.root_token,
    }

    def cli(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "vaultside", *args], env=kw.pop("env", env),
            capture_output=True, text=True, timeout=60, check=False, **kw,
        )  # fmt: skip

    pod_claim = "/kubernetes.io/pod/name=batch-7d4b9c"
    res = cli("jwt", "role", "write", "batch", "--policy", "app-read", "--ttl", "5m",
              "--sa-namespace", "jobs", "--claim", pod_claim)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert json.loads(cli("jwt", "role", "list", "--json").stdout) == ["batch", "web"]
    role = json.loads(cli("jwt", "role", "read", "batch", "--json").stdout)
    assert role["ttl"] == 300 and role["bound_service_account_namespaces"] == ["jobs"]
    jwt_file = tmp_path / "jwt"
    jwt_file.write_text(Minter(key).mint(namespace="jobs", name="batch"))
    anonymous = {k: v for k, v in env.items() if k != "VAULTSIDE_TOKEN"}
    res = cli("jwt", "login", "--role", "batch", "--jwt-file", str(jwt_file), "--field", "token",
              env=anonymous)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().startswith("vs.")
    jwt_file.write_text(Minter(key).mint(namespace="apps", name="batch"))
    res = cli("jwt", "login", "--role", "batch", "--jwt-file", str(jwt_file), env=anonymous)
    assert res.returncode == 3 and "namespace" in res.stderr, res.stderr  # denied
    plain = call(url_server, "POST", "auth/token/create", {"policies": ["app-read"]},
                 url_server.root_token)[1]["auth"]["token"]  # fmt: skip
    res = cli("jwt", "role", "delete", "batch", env={**env, "VAULTSIDE_TOKEN": plain})
    assert res.returncode == 3, res.stderr  # needs sudo
    assert cli("jwt", "role", "delete", "batch").returncode == 0
