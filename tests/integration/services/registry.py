"""The reference registry (Debian's ``docker-registry``, distribution 2.8) on loopback.

Several registry processes can serve ONE filesystem storage directory: images are pushed
(by dockerd or the HTTP API) to an open instance and read through instances that add
htpasswd (Basic) auth, TLS with a self-signed certificate, or Bearer token auth against
``TokenServer`` (a small token endpoint in the test process that signs RS256 JWTs with an
``x5c`` certificate the registry trusts).

Credentials are generated at test time; nothing here is a committed secret.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import secrets
import threading
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

with warnings.catch_warnings():  # bcrypt for htpasswd; the module leaves in Python 3.13
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

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

REGISTRY_BIN = "/usr/bin/docker-registry"
SERVICE = "vaultside-test-registry"
ISSUER = "vaultside-test-issuer"


def self_signed(cn: str, san_ip: str | None = "127.0.0.1") -> tuple[bytes, bytes, Any]:
    """(cert PEM, key PEM, key) of a fresh self-signed RSA certificate."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    )
    if san_ip:
        import ipaddress

        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(san_ip)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
    cert = builder.sign(key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem, (key, cert)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """A Bearer token endpoint: Basic credentials in, an RS256 JWT for the asked scope out."""

    def __init__(self, root: Path, username: str, password: str) -> None:
        cert_pem, _key_pem, (self._key, cert) = self_signed("vaultside-test-token", None)
        self.bundle = root / "token-ca.pem"
        self.bundle.write_bytes(cert_pem)
        self._x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        self._expected = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer._answer(self)

            def log_message(self, *_args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def realm(self) -> str:
        """The token endpoint URL the registry sends clients to."""
        return f"http://127.0.0.1:{self.port}/token"

    def _answer(self, h: BaseHTTPRequestHandler) -> None:
        q = parse_qs(urlsplit(h.path).query)
        auth = h.headers.get("Authorization", "")
        self.requests.append({"scope": q.get("scope"), "has_auth": bool(auth)})
        if not secrets.compare_digest(auth, self._expected):
            h.send_response(401)
            h.end_headers()
            return
        access = []
        for scope in q.get("scope", []):
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(datetime.datetime.now(datetime.UTC).timestamp())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        claims = {
            "iss": ISSUER,
            "sub": "tester",
            "aud": q.get("service", [SERVICE])[0],
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        signing = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        sig = self._key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
        body = json.dumps({"token": f"{signing}.{_b64url(sig)}"}).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()


@dataclass
class RegistryServer:
    """One ``docker-registry serve`` process on 127.0.0.1."""

    root: Path
    storage: Path
    port: int = field(default_factory=free_port)
    auth: dict[str, Any] | None = None
    tls: tuple[Path, Path] | None = None  # (cert, key)
    proc: Any = None

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, as in an image reference."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """Base URL of the registry."""
        return f"{'https' if self.tls else 'http'}://{self.host}"

    @property
    def log_path(self) -> Path:
        """The registry's log file."""
        return self.root / f"registry-{id(self)}.log"

    def _config(self) -> str:
        http: dict[str, Any] = {"addr": self.host, "secret": secrets.token_hex(16)}
        if self.tls:
            http["tls"] = {"certificate": str(self.tls[0]), "key": str(self.tls[1])}
        doc: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self.storage)}},
            "http": http,
        }
        if self.auth:
            doc["auth"] = self.auth
        return json.dumps(doc)  # YAML is a superset of JSON

    def _ready(self) -> bool:
        import ssl

        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        try:
            with urllib.request.urlopen(f"{self.url}/v2/", timeout=2, context=ctx) as r:
                return bool(r.status == 200)
        except urllib.error.HTTPError as exc:
            return exc.code == 401

    def start(self) -> None:
        """Start the process and wait until ``/v2/`` answers."""
        conf = self.root / f"config-{self.port}.yml"
        conf.write_text(self._config())
        self.proc = spawn([REGISTRY_BIN, "serve", str(conf)], self.log_path, cwd=self.root)
        try:
            wait_until(
                self._ready, timeout=30, what="docker-registry", proc=self.proc,
                log_path=self.log_path,
            )  # fmt: skip
        except ServiceUnavailable:
            terminate(self.proc, grace=5)
            raise

    def stop(self) -> None:
        """Stop the process."""
        terminate(self.proc, grace=5)


@dataclass
class RegistrySet:
    """Open, htpasswd+TLS and token-auth registries sharing one storage directory."""

    root: Path
    username: str
    password: str
    open: RegistryServer
    basic_tls: RegistryServer
    token: RegistryServer
    token_server: TokenServer
    ca_file: Path

    @classmethod
    def start(cls) -> RegistrySet:
        """Start all three (about a second each)."""
        if not Path(REGISTRY_BIN).exists():
            raise ServiceUnavailable(f"{REGISTRY_BIN} not found (apt-get install docker-registry)")
        root = short_tempdir("registry")
        storage = root / "storage"
        storage.mkdir()
        username, password = "tester", secrets.token_urlsafe(18)
        htpasswd = root / "htpasswd"
        htpasswd.write_text(
            f"{username}:{crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))}\n"
        )
        cert_pem, key_pem, _ = self_signed("127.0.0.1")
        (root / "tls.crt").write_bytes(cert_pem)
        (root / "tls.key").write_bytes(key_pem)
        tokens = TokenServer(root, username, password)
        servers = [
            RegistryServer(root, storage),
            RegistryServer(
                root,
                storage,
                auth={"htpasswd": {"realm": "vaultside-test", "path": str(htpasswd)}},
                tls=(root / "tls.crt", root / "tls.key"),
            ),
            RegistryServer(
                root,
                storage,
                auth={
                    "token": {
                        "realm": tokens.realm,
                        "service": SERVICE,
                        "issuer": ISSUER,
                        "rootcertbundle": str(tokens.bundle),
                    }
                },
            ),
        ]
        started: list[RegistryServer] = []
        try:
            for s in servers:
                start_on_free_port(s)
                started.append(s)
        except BaseException:
            for s in started:
                s.stop()
            tokens.close()
            remove_tree(root)
            raise
        return cls(root, username, password, *servers, tokens, root / "tls.crt")

    def close(self) -> None:
        """Stop every process and delete the storage."""
        for s in (self.open, self.basic_tls, self.token):
            s.stop()
        self.token_server.close()
        remove_tree(self.root)

    def put_blob(self, repo: str, data: bytes) -> str:
        """Upload a blob to the open registry (monolithic); its digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        req = urllib.request.Request(f"{self.open.url}/v2/{repo}/blobs/uploads/", method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            location = r.headers["Location"]
        if location.startswith("/"):
            location = self.open.url + location
        sep = "&" if "?" in location else "?"
        req = urllib.request.Request(f"{location}{sep}digest={digest}", data=data, method="PUT")
        req.add_header("Content-Type", "application/octet-stream")
        with urllib.request.urlopen(req, timeout=60):
            pass
        return digest

    def put_manifest(self, repo: str, ref: str, doc: dict[str, Any], media_type: str) -> str:
        """Store a manifest or index under ``ref`` in the open registry; its digest."""
        body = json.dumps(doc).encode()
        req = urllib.request.Request(
            f"{self.open.url}/v2/{repo}/manifests/{ref}", data=body, method="PUT"
        )
        req.add_header("Content-Type", media_type)
        with urllib.request.urlopen(req, timeout=30):
            pass
        return "sha256:" + hashlib.sha256(body).hexdigest()

    def get_manifest(self, repo: str, ref: str, accept: str) -> tuple[dict[str, Any], bytes]:
        """A manifest from the open registry: (parsed, raw bytes)."""
        req = urllib.request.Request(f"{self.open.url}/v2/{repo}/manifests/{ref}")
        req.add_header("Accept", accept)
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
        return json.loads(raw), raw
