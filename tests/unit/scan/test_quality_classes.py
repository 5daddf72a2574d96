"""The six classes of misses (issue 13): each test failed on the scanner before the fix.

Every credential is generated here, at test time: RSA keys with ``cryptography``, tokens
with the generators of ``credgen``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import urllib.parse
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.unit.scan.credgen import AN, github_token, rnd
from vaultside.scan.base import Finding, Severity
from vaultside.scan.filters import is_placeholder
from vaultside.scan.scanner import Scanner
from vaultside.scan.sources.container import container_chunks
from vaultside.scan.sources.path import PathSource

SCANNER = Scanner()


def scan_files(root: Path, files: dict[str, str]) -> list[Finding]:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return SCANNER.scan([PathSource(root)]).findings


def at(findings: list[Finding], path: str) -> list[tuple[str, int | None]]:
    return sorted((f.rule_id, f.location.line) for f in findings if f.location.path == path)


def pem_key(fmt: serialization.PrivateFormat) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()


# ---- 1. placeholders are judged on the whole value --------------------------------------


def test_fresh_rsa_keys_containing_placeholder_words_are_reported(tmp_path: Path) -> None:
    """A PKCS#8 key whose random base64 contains ``xyz`` is not a placeholder."""
    keys: list[str] = []
    while len(keys) < 2:
        pem = pem_key(serialization.PrivateFormat.PKCS8)
        if "xyz" in pem.lower():
            keys.append(pem)
    files = {f"root/.ssh/id_{i}": pem for i, pem in enumerate(keys)}
    found = scan_files(tmp_path, files)
    for rel in files:
        assert at(found, rel) == [("private-key", 1)], rel


def test_long_random_token_with_short_word_is_kept(tmp_path: Path) -> None:
    rng = random.Random(4)
    token = github_token(rng)
    while "xyz" not in token.lower()[4:]:
        token = github_token(rng)
    assert at(scan_files(tmp_path, {"env": f"GH={token}\n"}), "env") == [("github-token", 1)]


@pytest.mark.parametrize(
    ("value", "placeholder"),
    [
        ("ghp_" + "x" * 36, True),
        ("<your-api-token>", True),
        ("changeme", True),
        ("sk_live_" + "*" * 24, True),
        ("your_api_key_here", True),
        ("XYZ12345", True),
        ("AKIA" + "ABCDEFGH2345" + "EXAMPLE", True),
        ("K9dQz2LmPxyz4WvRtY8sNb3cHq6uFjA1", False),  # 32 random chars that contain "xyz"
        ("todoK9dQz2LmP4WvRtY8sNb3cHq6uFjA", False),
    ],
)
def test_placeholder_is_judged_on_the_whole_value(value: str, placeholder: bool) -> None:
    assert is_placeholder(value) is placeholder


# ---- 2. credentials inside encodings ----------------------------------------------------


def test_pem_in_json_string_with_escapes_is_found(tmp_path: Path) -> None:
    """A GCP service-account file: the key is one JSON string with ``\\n`` escapes."""
    pem = pem_key(serialization.PrivateFormat.PKCS8)
    doc = {
        "type": "service_account",
        "project_id": "acme-prod",
        "private_key": pem,
        "client_email": "ci@acme-prod.iam.gserviceaccount.com",
    }
    found = scan_files(tmp_path, {"app/sa.json": json.dumps(doc, indent=2)})
    hits = [f for f in found if f.rule_id == "private-key"]
    assert [(f.location.path, f.location.line) for f in hits] == [("app/sa.json", 4)]
    assert hits[0].secret is not None and hits[0].secret.reveal() == pem.strip()


def test_base64_in_well_known_fields_is_decoded(tmp_path: Path) -> None:
    rng = random.Random(9)
    pem = pem_key(serialization.PrivateFormat.TraditionalOpenSSL)
    b64 = base64.b64encode(pem.encode()).decode()
    password = rnd(rng, AN, 22)
    docker_cfg = json.dumps(
        {
            "auths": {
                "registry.internal": {
                    "auth": base64.b64encode(b"ci:" + rnd(rng, AN, 20).encode()).decode()
                }
            }
        }
    )
    kubeconfig = (
        "apiVersion: v1\nkind: Config\nusers:\n- name: admin\n  user:\n"
        f"    client-certificate-data: {base64.b64encode(b'cert').decode()}\n"
        f"    client-key-data: {b64}\n"
    )
    secret = (
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ntype: Opaque\ndata:\n"
        "  username: " + base64.b64encode(b"app").decode() + "\n"
        "  password: " + base64.b64encode(password.encode()).decode() + "\n"
        "  .dockerconfigjson: " + base64.b64encode(docker_cfg.encode()).decode() + "\n"
    )
    npmrc = (
        "registry=https://npm.internal/\n_auth="
        + base64.b64encode(f"ci:{rnd(rng, AN, 16)}".encode()).decode()
        + "\n"
    )
    found = scan_files(
        tmp_path, {"root/.kube/config": kubeconfig, "k8s/secret.yaml": secret, "root/.npmrc": npmrc}
    )
    assert at(found, "root/.kube/config") == [("private-key", 7)]
    assert ("generic-secret-assignment", 8) in at(found, "k8s/secret.yaml")
    assert ("docker-config-auth", 9) in at(found, "k8s/secret.yaml")
    assert at(found, "root/.npmrc") == [("npmrc-auth", 2)]
    decoded = [f.secret.reveal() for f in found if f.secret is not None]
    assert password in decoded and pem.strip() in decoded


def test_percent_encoded_and_piped_base64_values_are_decoded(tmp_path: Path) -> None:
    rng = random.Random(10)
    url = f"postgres://app:{rnd(rng, AN, 18)}@db.internal:5432/app"
    token = "glpat-" + rnd(rng, AN, 20)
    text = (
        f"callback=https://sso.internal/cb?dsn={urllib.parse.quote(url, safe='')}&x=1\n"
        f"RUN echo {base64.b64encode(f'export GITLAB_TOKEN={token}'.encode()).decode()}"
        " | base64 -d > /etc/profile.d/ci.sh\n"
    )
    found = scan_files(tmp_path, {"etc/app.conf": text})
    assert at(found, "etc/app.conf") == [("gitlab-pat", 2), ("url-with-password", 1)]


# ---- 3. program arguments and URLs without a user ---------------------------------------


def test_credentials_in_program_arguments_and_userless_urls(tmp_path: Path) -> None:
    rng = random.Random(11)
    script = (
        "#!/bin/sh\n"
        f"mysql -h db -uroot -p{rnd(rng, AN, 16)} app < /seed.sql\n"
        f"exec vault login --token {rnd(rng, AN, 26)}\n"
        f"export PGPASSWORD={rnd(rng, AN, 18)}\n"
        f"REDIS_URL=redis://:{rnd(rng, AN, 20)}@cache:6379/0\n"
        f"BROKER=amqp://:{rnd(rng, AN, 16)}@mq:5672/\n"
    )
    found = at(scan_files(tmp_path, {"entrypoint.sh": script}), "entrypoint.sh")
    assert [line for _rule, line in found] == [2, 3, 4, 5, 6]


def test_container_args_with_separate_flag_values() -> None:
    rng = random.Random(12)
    attrs = {
        "Name": "/app",
        "Path": "/app/server",
        "Args": ["--db-host", "db", "--password", rnd(rng, AN, 20), "-p" + rnd(rng, AN, 14)],
        "Config": {"Env": [], "Labels": {}},
    }
    chunks = list(container_chunks(attrs))
    found = [f for c in chunks for f in SCANNER._chunk_findings(c)]
    assert [f.location.path for f in found] == ["container/Cmd"]


# ---- 4. whole values with symbols -------------------------------------------------------


def test_quoted_value_with_symbols_is_captured_whole(tmp_path: Path) -> None:
    rng = random.Random(13)
    django = "abcdefghijklmnopqrstuvwxyz0123456789!@#$%^&*(-_=+)"
    key = "#9v" + rnd(rng, django, 44) + "(@!==" + "+h7=z"
    found = scan_files(tmp_path, {"app/settings.py": f"DEBUG = False\nSECRET_KEY = '{key}'\n"})
    secrets = [f.secret.reveal() for f in found if f.secret is not None]
    assert secrets == [key]


# ---- 5. published examples and documentation ---------------------------------------------


def jwt_io_example() -> str:
    """The example JWT on jwt.io, rebuilt from its published header, claims and key."""

    def seg(obj: dict[str, object]) -> str:
        raw = json.dumps(obj, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    head = seg({"alg": "HS256", "typ": "JWT"})
    body = seg({"sub": "1234567890", "name": "John Doe", "iat": 1516239022})
    sig = hmac.new(b"your-256-bit-secret", f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"


def test_published_examples_are_not_leaks(tmp_path: Path) -> None:
    # RFC 6749 section 4.1.4's example access and refresh tokens
    rfc = '{"access_token":"2YotnFZFEjr1zCsicMWpAA","refresh_token":"tGzv3JOkF0XG5Qx2TlKWIA"}'
    aws = "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"
    files = {
        "app/oauth.json": rfc + "\n",
        "app/api.http": f"Authorization: Bearer {jwt_io_example()}\n",
        "app/aws.ini": aws,
    }
    assert scan_files(tmp_path, files) == []


def test_generic_matches_in_documentation_are_dropped_format_matches_kept(
    tmp_path: Path,
) -> None:
    rng = random.Random(14)
    generic = (
        f"password = {rnd(rng, AN, 20)}\n"
        f"DATABASE_URL=postgres://app:{rnd(rng, AN, 18)}@db/app\n"
        f"GITHUB_TOKEN=ghp_{rnd(rng, AN, 36)}\n"  # no valid checksum: contextual
    )
    pem = pem_key(serialization.PrivateFormat.TraditionalOpenSSL)
    live = github_token(rng)
    docs = {
        "usr/share/doc/libfoo/README.Debian": generic,
        "usr/share/doc/libfoo/changelog": generic,
        "usr/share/man/man1/foo.1": generic,
        "opt/venv/lib/python3.11/site-packages/foo-1.0.dist-info/METADATA": generic,
        "opt/src/foo/PKG-INFO": generic,
        "app/README.md": generic,
        "usr/share/doc/bar/examples/id_rsa": pem,
        "usr/share/doc/bar/NEWS": f"token: {live}\n",
    }
    found = scan_files(tmp_path, docs)
    assert sorted((f.location.path, f.rule_id) for f in found) == [
        ("usr/share/doc/bar/NEWS", "github-token"),
        ("usr/share/doc/bar/examples/id_rsa", "private-key"),
    ]


# ---- 6. checksummed formats -------------------------------------------------------------


def test_github_tokens_are_reported_under_their_rule_checksum_sets_confidence(
    tmp_path: Path,
) -> None:
    rng = random.Random(15)
    valid = github_token(rng)
    random_token = "ghp_" + rnd(rng, AN, 36)
    found = scan_files(tmp_path, {"ci.env": f"GITHUB_TOKEN={valid}\nGH_PAT={random_token}\n"})
    got = [(f.rule_id, f.location.line, f.severity) for f in found]
    assert sorted(got, key=lambda t: t[1]) == [
        ("github-token", 1, Severity.CRITICAL),
        ("github-token", 2, Severity.MEDIUM),
    ]
    assert "checksum valid" in next(f.description for f in found if f.location.line == 1)
