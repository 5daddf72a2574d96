"""A decoy set generated at test time: things that look like secrets but are not."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import uuid

from tests.unit.scan.credgen import AN, B64, HEX, rnd


def decoy_files(rng: random.Random) -> dict[str, bytes]:
    """Path → content; none of it should be reported."""
    sha = hashlib.sha256(rnd(rng, AN, 10).encode()).hexdigest()
    md5 = hashlib.md5(rnd(rng, AN, 10).encode()).hexdigest()
    integrity = "sha512-" + base64.b64encode(rng.randbytes(64)).decode()
    lock = {
        "name": "app",
        "lockfileVersion": 3,
        "packages": {
            f"node_modules/pkg{i}": {
                "version": "1.0.0",
                "resolved": f"https://registry.npmjs.org/pkg{i}/-/pkg{i}-1.0.0.tgz",
                "integrity": "sha512-" + base64.b64encode(rng.randbytes(64)).decode(),
            }
            for i in range(20)
        },
    }
    cert_body = "\n".join(rnd(rng, B64, 64) for _ in range(8))
    ssh_pub = "ssh-rsa AAAAB3NzaC1yc2E" + rnd(rng, B64, 300) + " ops@host"
    minified = (
        "!function(e,t){var n=e.token||t.getToken(),r={apiKey:e.apiKey,secret:t.secretName};"
        "function o(e){return e.password=e.passwordHash,e.token=n.accessToken}"
        "var s={token:this.state.token,password:i.password};return o(s)}(window,document);"
    ) * 50
    example_aws = "AKIA" + rnd(rng, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 9) + "EXAMPLE"
    return {
        "app/checksums.txt": f"sha256 = {sha}\nmd5sum: {md5}\nsecret_sha256={sha}\n".encode(),
        "app/ids.yaml": (
            f"request_token: {uuid.UUID(int=rng.getrandbits(128))}\n"
            f"session_secret_id = {uuid.UUID(int=rng.getrandbits(128))}\n"
        ).encode(),
        "app/.env.example": (
            "DB_PASSWORD=changeme\nAPI_KEY=<your-api-key>\nSECRET_KEY=your_secret_key_here\n"
            "GITHUB_TOKEN=ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\nTOKEN=\n"
            f"AWS_ACCESS_KEY_ID={example_aws}\n"
        ).encode(),
        "app/settings.py": (
            "DB_PASSWORD = os.environ['DB_PASSWORD']\n"
            "API_TOKEN = os.getenv('API_TOKEN')\n"
            'password = "${DB_PASSWORD}"\n'
            "secret: {{ .Values.db.secret }}\n"
            "DATABASE_URL=postgres://app:${DB_PASSWORD}@db:5432/app\n"
            'password_hash = "$2b$12$' + rnd(rng, AN, 53) + '"\n'
            "PASSWORD_FILE=/run/secrets/db_password\n"
        ).encode(),
        "app/package-lock.json": json.dumps(lock, indent=2).encode(),
        "app/yarn.lock": f'pkg@^1.0.0:\n  integrity "{integrity}"\n'.encode(),
        "app/certs/server.pem": (
            f"-----BEGIN CERTIFICATE-----\n{cert_body}\n-----END CERTIFICATE-----\n"
        ).encode(),
        "app/certs/pub.pem": (
            f"-----BEGIN PUBLIC KEY-----\n{cert_body}\n-----END PUBLIC KEY-----\n"
        ).encode(),
        "root/.ssh/authorized_keys": (ssh_pub + "\n").encode(),
        "app/static/app.min.js": minified.encode(),
        "app/git.txt": (
            f"commit {rnd(rng, HEX, 40)}\nsecret_commit_id: {rnd(rng, HEX, 40)}\n"
        ).encode(),
    }
