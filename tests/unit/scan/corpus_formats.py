"""The evaluation corpus's building blocks: plants, the spec, the builder that writes files
and keeps line numbers, and the files whose format carries a credential (keys, service
accounts, manifests, configs, scripts). Values are drawn from the builder's ``rng`` or made
by ``cryptography`` now; nothing here is a credential literal.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import random
import tarfile
import urllib.parse
import zipfile
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from tests.unit.scan.credgen import AN, B64, HEX, URLS, D, github_token, rnd

KINDS = (
    "env",
    "label",
    "history",
    "layer-file",
    "deleted-file",
    "nested-archive",
    "container-env",
    "container-label",
    "container-args",
)
SYM = AN + "!#%^*-_=+@"


@dataclass
class Plant:
    """One planted credential: ``value`` is the secret, ``accept`` other forms a tool may
    report for it (the encoded value, the whole URL, ``user:password``)."""

    type: str
    kind: str
    value: str
    path: str = ""  # file path in the image, "" for config / container plants
    line: int | None = None
    accept: tuple[str, ...] = ()


@dataclass
class CorpusSpec:
    """Everything to build one image and its containers."""

    plants: list[Plant] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    build_args: dict[str, str] = field(default_factory=dict)
    run_lines: list[str] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    deleted: dict[str, bytes] = field(default_factory=dict)
    decoys: dict[str, bytes] = field(default_factory=dict)
    containers: list[dict[str, object]] = field(default_factory=list)


def url_password(r: random.Random) -> tuple[str, str]:
    pw = rnd(r, AN, 18)
    return pw, f"postgres://app:{pw}@db.internal:5432/app"


def userless_url(r: random.Random) -> tuple[str, str]:
    pw = rnd(r, AN, 20)
    return pw, f"redis://:{pw}@cache.internal:6379/0"


def pem_rsa(pkcs8: bool = True) -> str:
    """A fresh 2048-bit RSA private key in PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    fmt = (
        serialization.PrivateFormat.PKCS8
        if pkcs8
        else serialization.PrivateFormat.TraditionalOpenSSL
    )
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()


def pem_openssh() -> str:
    """A fresh Ed25519 key in OpenSSH's private key format."""
    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


class Builder:
    """Places plants; keeps line numbers of the files it writes."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.spec = CorpusSpec()
        self.n = 0

    def uid(self) -> str:
        self.n += 1
        return f"{self.n:03d}"

    def file(
        self,
        kind: str,
        path: str,
        lines: list[str],
        plants: list[tuple[str, str, int, tuple[str, ...]]],
    ) -> None:
        """A file of ``lines``; ``plants`` are (type, value, 1-based line, accept)."""
        data = ("\n".join(lines) + "\n").encode()
        target = self.spec.deleted if kind == "deleted-file" else self.spec.files
        if kind == "nested-archive":
            data = self._archive(path, data)
            path = path.rsplit("/", 1)[0] + f"/bundle{self.uid()}" + self._ext
        for typ, value, line, accept in plants:
            self.spec.plants.append(
                Plant(typ, kind, value, path, None if kind == "nested-archive" else line, accept)
            )
        target[path] = data

    _ext = ".tgz"

    def _archive(self, inner: str, data: bytes) -> bytes:
        name = inner.lstrip("/").split("/", 2)[-1]
        if self.rng.random() < 0.5:
            self._ext = ".jar"
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
                zf.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
                zf.writestr(f"BOOT-INF/classes/{name}", data)
            return buf.getvalue()
        self._ext = ".tgz"
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            info = tarfile.TarInfo(f"bundle/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        return gzip.compress(buf.getvalue(), mtime=0)


def structured(b: Builder, kind: str, typ: str) -> None:
    """A file whose format carries the credential (keys, service accounts, manifests)."""
    r, u = b.rng, b.uid()
    d = {"deleted-file": "tmp/build", "nested-archive": "opt/lib"}.get(kind, "")
    base = d + "/" if d else ""
    if typ == "private-key-rsa":
        pem = pem_rsa(pkcs8=r.random() < 0.5).strip()
        b.file(kind, f"{base}root/.ssh/id_rsa_{u}", pem.splitlines(), [(typ, pem, 1, ())])
    elif typ == "private-key-openssh":
        pem = pem_openssh().strip()
        b.file(kind, f"{base}home/app/.ssh/id_ed25519_{u}", pem.splitlines(), [(typ, pem, 1, ())])
    elif typ == "gcp-service-account":
        pem = pem_rsa()
        doc = {
            "type": "service_account",
            "project_id": f"acme-{rnd(r, D, 4)}",
            "private_key_id": rnd(r, HEX, 40),
            "private_key": pem,
            "client_email": "ci@acme.iam.gserviceaccount.com",
        }
        text = json.dumps(doc, indent=2)
        b.file(
            kind,
            f"{base}etc/gcp/sa-{u}.json",
            text.splitlines(),
            [(typ, pem.strip(), 5, (json.dumps(pem)[1:-1], str(doc["private_key_id"])))],
        )
    elif typ == "kubeconfig-client-key":
        pem = pem_rsa(pkcs8=False)
        enc = b64(pem)
        lines = ["apiVersion: v1", "kind: Config", "users:", "- name: admin", "  user:",
                 f"    client-certificate-data: {b64('-----BEGIN CERTIFICATE-----')}",
                 f"    client-key-data: {enc}"]  # fmt: skip
        b.file(kind, f"{base}root/.kube/config-{u}", lines, [(typ, pem.strip(), 7, (enc,))])
    elif typ == "k8s-secret-data":
        pw = rnd(r, SYM, 24)
        enc = b64(pw)
        lines = ["apiVersion: v1", "kind: Secret", "metadata:", f"  name: db-{u}", "type: Opaque",
                 "data:", f"  username: {b64('app')}", f"  password: {enc}"]  # fmt: skip
        b.file(kind, f"{base}deploy/k8s/secret-{u}.yaml", lines, [(typ, pw, 8, (enc,))])
    elif typ == "docker-config-auth":
        pw = rnd(r, AN, 24)
        enc = b64(f"ci-bot:{pw}")
        text = json.dumps({"auths": {"registry.internal:5000": {"auth": enc}}}, indent=2)
        b.file(
            kind,
            f"{base}root/.docker/config-{u}.json",
            text.splitlines(),
            [(typ, pw, 4, (enc, f"ci-bot:{pw}"))],
        )
    elif typ == "npmrc-auth":
        pw = rnd(r, AN, 20)
        enc = b64(f"ci:{pw}")
        b.file(
            kind,
            f"{base}home/node/npmrc-{u}/.npmrc",
            ["registry=https://npm.internal/", f"_auth={enc}", "always-auth=true"],
            [(typ, pw, 2, (enc, f"ci:{pw}"))],
        )
    elif typ == "netrc":
        pw = rnd(r, AN, 22)
        b.file(
            kind,
            f"{base}root/netrc-{u}/.netrc",
            [f"machine git.internal login deploy password {pw}"],
            [(typ, pw, 1, ())],
        )
    elif typ == "git-credentials":
        tok = github_token(r)
        url = f"https://deploy:{tok}@github.com"
        b.file(kind, f"{base}root/gitcred-{u}/.git-credentials", [url], [(typ, tok, 1, (url,))])
    elif typ == "django-secret-key":
        key = rnd(r, "abcdefghijklmnopqrstuvwxyz0123456789!@#$%^&*(-_=+)", 50)
        lines = ["import os", "", "DEBUG = False", f"SECRET_KEY = '{key}'", "ALLOWED_HOSTS = ['*']"]
        b.file(kind, f"{base}srv/site{u}/settings.py", lines, [(typ, key, 4, ())])
    elif typ == "maven-settings-password":
        pw = rnd(r, AN, 20)
        lines = ["<settings>", "  <servers>", "    <server>", "      <id>internal</id>",
                 "      <username>deploy</username>", f"      <password>{pw}</password>",
                 "    </server>", "  </servers>", "</settings>"]  # fmt: skip
        b.file(kind, f"{base}root/.m2/settings-{u}.xml", lines, [(typ, pw, 6, ())])
    elif typ == "script-cli-password":
        pw1, pw2, tok = rnd(r, AN, 16), rnd(r, AN, 18), rnd(r, AN, 28)
        lines = ["#!/bin/sh", "set -e", f"mysql -h db -uroot -p{pw1} app < /seed.sql",
                 f"export PGPASSWORD={pw2}", "psql -h pg -U app -c 'select 1'",
                 f"exec /app/server --listen :8080 --token {tok}"]  # fmt: skip
        found = [
            ("mysql-cli-password", pw1, 3, ()),
            ("pgpassword", pw2, 4, ()),
            ("cli-token-flag", tok, 6, ()),
        ]
        b.file(kind, f"{base}usr/local/bin/entrypoint-{u}.sh", lines, found)
    elif typ == "bearer-header":
        tok = rnd(r, URLS, 40)
        lines = [
            "#!/bin/sh",
            f'curl -fsS -H "Authorization: Bearer {tok}" https://api.internal/v1/sync',
        ]
        b.file(kind, f"{base}etc/cron.daily/sync-{u}", lines, [(typ, tok, 2, ())])
    elif typ == "percent-encoded-url":
        pw, url = url_password(r)
        enc = urllib.parse.quote(url, safe="")
        b.file(
            kind,
            f"{base}etc/app/callback-{u}.conf",
            ["[sso]", f"redirect=https://sso.internal/cb?dsn={enc}&v=2"],
            [(typ, pw, 2, (enc, url))],
        )
    elif typ == "compressed-log":
        pw = rnd(r, AN, 20)
        lines = [f"2026-01-0{i} INFO request ok" for i in range(1, 6)]
        lines.insert(3, f"2026-01-03 DEBUG connecting with password={pw} to db")
        data = gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0)
        path = f"{base}var/log/app-{u}.log.gz"
        (b.spec.deleted if kind == "deleted-file" else b.spec.files)[path] = data
        b.spec.plants.append(Plant(typ, kind, pw, path, None))
    elif typ == "wp-config":
        pw = rnd(r, SYM, 22)
        lines = ["<?php", "define('DB_NAME', 'wordpress');", "define('DB_USER', 'wp');",
                 f"define('DB_PASSWORD', '{pw}');", "define('DB_HOST', 'db');"]  # fmt: skip
        b.file(kind, f"{base}var/www/site{u}/wp-config.php", lines, [(typ, pw, 4, ())])
    elif typ == "redis-requirepass":
        pw = rnd(r, AN, 26)
        lines = ["bind 0.0.0.0", "port 6379", f"requirepass {pw}", "appendonly yes"]
        b.file(kind, f"{base}etc/redis/redis-{u}.conf", lines, [(typ, pw, 3, ())])
    elif typ == "ansible-inventory":
        pw = rnd(r, AN, 18)
        lines = [
            "[web]",
            f"web1 ansible_host=10.0.0.5 ansible_user=deploy ansible_become_pass={pw}",
        ]
        b.file(kind, f"{base}srv/ansible-{u}/inventory.ini", lines, [(typ, pw, 2, ())])
    elif typ == "jdbc-url-param":
        pw = rnd(r, AN, 16)
        url = f"jdbc:mysql://db:3306/app?user=app&password={pw}&useSSL=true"
        b.file(
            kind,
            f"{base}opt/app-{u}/application.properties",
            ["server.port=8080", f"spring.datasource.url={url}"],
            [(typ, pw, 2, ())],
        )
    elif typ == "putty-key":
        body = base64.b64encode(r.randbytes(32)).decode()
        lines = ["PuTTY-User-Key-File-3: ssh-ed25519", "Encryption: none", "Comment: deploy",
                 "Public-Lines: 2", rnd(r, B64, 64), rnd(r, B64, 4), "Private-Lines: 1", body,
                 f"Private-MAC: {rnd(r, HEX, 64)}"]  # fmt: skip
        b.file(kind, f"{base}home/app/keys-{u}/deploy.ppk", lines, [(typ, body, 1, ())])
    elif typ == "azure-service-bus":
        key = base64.b64encode(r.randbytes(32)).decode()
        cs = f"Endpoint=sb://acme{u}.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey={key}"
        b.file(
            kind,
            f"{base}srv/worker-{u}/appsettings.json",
            ["{", f'  "ServiceBus": "{cs}"', "}"],
            [(typ, key, 2, ())],
        )
    elif typ == "dotnet-app-config":
        pw = rnd(r, AN, 20)
        lines = [
            "<configuration>",
            "  <appSettings>",
            '    <add key="Environment" value="prod" />',
            f'    <add key="SmtpPassword" value="{pw}" />',
            "  </appSettings>",
            "</configuration>",
        ]
        b.file(kind, f"{base}app/site{u}/Web.config", lines, [(typ, pw, 4, ())])
    elif typ == "tomcat-keystore":
        pw = rnd(r, AN, 16)
        conn = f'<Connector port="8443" keystoreFile="conf/ks.jks" keystorePass="{pw}" />'
        lines = ['<Server port="8005">', f"  {conn}", "</Server>"]
        b.file(kind, f"{base}usr/local/tomcat{u}/conf/server.xml", lines, [(typ, pw, 2, ())])
    elif typ == "rclone-pass":
        pw = rnd(r, URLS, 40)
        lines = [
            f"[backup{u}]",
            "type = sftp",
            "host = files.internal",
            "user = backup",
            f"pass = {pw}",
        ]
        b.file(kind, f"{base}root/.config/rclone-{u}/rclone.conf", lines, [(typ, pw, 5, ())])
    elif typ == "terraform-state":
        pw = rnd(r, SYM, 20)
        doc = {
            "version": 4,
            "resources": [
                {
                    "type": "aws_db_instance",
                    "instances": [{"attributes": {"username": "app", "password": pw}}],
                }
            ],
        }
        text = json.dumps(doc, indent=2)
        line = next(i for i, ln in enumerate(text.splitlines(), 1) if '"password"' in ln)
        b.file(
            kind, f"{base}srv/infra-{u}/terraform.tfstate", text.splitlines(), [(typ, pw, line, ())]
        )
    else:
        raise ValueError(typ)


STRUCTURED = (
    "private-key-rsa", "private-key-openssh", "gcp-service-account", "kubeconfig-client-key",
    "k8s-secret-data", "docker-config-auth", "npmrc-auth", "netrc", "git-credentials",
    "django-secret-key", "maven-settings-password", "script-cli-password", "bearer-header",
    "percent-encoded-url", "terraform-state", "compressed-log", "wp-config", "redis-requirepass",
    "ansible-inventory", "jdbc-url-param", "putty-key", "azure-service-bus", "dotnet-app-config",
    "tomcat-keystore", "rclone-pass",
)  # fmt: skip
