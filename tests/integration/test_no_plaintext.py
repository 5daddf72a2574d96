"""No plaintext on disk: secret values and tokens never appear in any file the server writes.

Values are generated at test time. Every file under the data dir (database, WAL, SHM, audit
log, key files, ...) and the server's captured output (minus the one dev root-token line) is
scanned for each value and token, raw and in base64 (any alignment), url-safe base64 and hex.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from pathlib import Path

from vaultside.client import HttpSecretSource, VaultsideClient

from .services.vaultside_server import VaultsideServerFactory

SECRETS = 120


def encodings(value: str) -> set[bytes]:
    """The raw bytes and the forms an encoder could leave on disk (≥ 16 chars each)."""
    raw = value.encode()
    forms = {raw, raw.hex().encode(), raw.hex().upper().encode()}
    for enc in (base64.b64encode, base64.urlsafe_b64encode):
        for shift in range(3):  # base64 of the value at every alignment inside a longer blob
            text = enc(b"\0" * shift + raw).rstrip(b"=")
            forms.add(text[4 if shift else 0 : -4])
    return {f for f in forms if len(f) >= 16}


def scan(files: dict[str, bytes], needles: dict[str, set[bytes]]) -> list[str]:
    """``"<file>: <label> as <form>"`` for every needle found."""
    hits = []
    for name, blob in files.items():
        for label, forms in needles.items():
            for form in forms:
                if form in blob:
                    hits.append(f"{name}: {label} ({form[:6]!r}...)")
    return hits


async def test_no_secret_or_token_reaches_disk(vaultside_server: VaultsideServerFactory) -> None:
    server = vaultside_server()
    values: dict[str, str] = {}
    tokens: list[str] = []
    async with VaultsideClient(server.addr, server.root_token) as root:
        await root.write_policy(
            "reader", [{"path": "secrets/np/**", "capabilities": ["read", "list"]}]
        )

        async def put(i: int) -> None:
            path = f"np/app{i % 12}/s{i}"
            first, second = secrets.token_urlsafe(24), secrets.token_hex(20)
            values[f"{path} v1"], values[f"{path} v2"] = first, second
            await root.write_secret(path, {"password": first, "user": f"u{i}"})
            await root.write_secret(path, {"password": second, "user": f"u{i}"})
            if i % 5 == 0:
                await root.delete_secret(path)
            if i % 7 == 0:
                await root.destroy_secret(path, [1])

        await asyncio.gather(*(put(i) for i in range(SECRETS)))
        pem_like = base64.b64encode(secrets.token_bytes(96)).decode()
        values["np/cert"] = pem_like
        await root.write_secret("np/cert", {"key": pem_like}, secret_type="private_key")

        for n in range(10):
            auth = await root.create_token(policies=["reader"], ttl=3600, display_name=f"t{n}")
            tokens.append(auth.token)
        # use the tokens: reads, resolve, lookup, revoke (audit must hash them, not store them)
        for n, token in enumerate(tokens):
            async with VaultsideClient(server.addr, token) as c:
                await c.lookup_self()
                got = await HttpSecretSource(c).resolve_many(["kv:np/cert#key"])
                assert got["kv:np/cert#key"].value == pem_like
                if n % 2:
                    await root.revoke_token(token=token)
        root_token = server.root_token

    server.stop()

    files: dict[str, bytes] = {}
    for path in sorted(server.data_dir.rglob("*")):
        if path.is_file():
            files[str(path.relative_to(server.data_dir))] = path.read_bytes()
    assert any("audit" in name for name in files), f"no audit log among {sorted(files)}"
    assert sum(len(b) for b in files.values()) > 0
    output = Path(server.log_path).read_bytes()
    token_lines = [ln for ln in output.splitlines() if root_token.encode() in ln]
    assert len(token_lines) == 1 and b"Root token" in token_lines[0]
    files["<server output>"] = b"\n".join(
        ln for ln in output.splitlines() if root_token.encode() not in ln
    )

    needles = {f"secret {k}": encodings(v) for k, v in values.items()}
    needles |= {f"token #{i}": encodings(t) for i, t in enumerate(tokens)}
    needles["root token"] = encodings(root_token)
    assert scan(files, needles) == []
    # the scan can fail: a planted value is found
    planted = {**files, "<planted>": b"xx" + base64.b64encode(b"ab" + pem_like.encode()) + b"yy"}
    assert scan(planted, {"np/cert": needles["secret np/cert"]}) != []
