"""Decoders: what a format says is encoded is decoded and scanned, at the encoded span."""

from __future__ import annotations

import base64
import json
import random
import urllib.parse

import pytest

from tests.unit.scan.credgen import AN, B64, pem_private_key, rnd
from vaultside.scan.base import Chunk, Location
from vaultside.scan.detectors.decoders import b64decode, unescape
from vaultside.scan.scanner import Scanner

RNG = random.Random(31)
PEM = pem_private_key(RNG)
CERT = "-----BEGIN CERTIFICATE-----\n" + rnd(RNG, B64, 64) + "\n-----END CERTIFICATE-----"
PW = rnd(RNG, AN, 22)


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def secret_doc(name: str, value: str, kind: str = "Secret") -> str:
    return f"apiVersion: v1\nkind: {kind}\nmetadata:\n  name: x\ndata:\n  {name}: {b64(value)}\n"


CASES = [
    # (text, rule expected at line, or None for a near miss)
    (json.dumps({"private_key": PEM}), ("private-key", 1)),
    (json.dumps({"ca": CERT}), None),
    (f"KEY='{json.dumps(PEM)[1:-1]}'", ("private-key", 1)),
    (f"client-key-data: {b64(PEM)}", ("private-key", 1)),
    (f"certificate-authority-data: {b64(CERT)}", None),
    (secret_doc("password", PW), ("generic-secret-assignment", 6)),
    (secret_doc("username", "app"), None),
    (secret_doc("app.env", f"API_TOKEN={PW}"), ("generic-secret-assignment", 6)),
    (secret_doc("app.env", f"API_TOKEN={PW}", kind="ConfigMap"), None),  # not said to be base64
    (
        '{"kind": "Secret", "data": {"db-password": "' + b64(PW) + '"}}',
        ("generic-secret-assignment", 1),
    ),
    (
        f"RUN echo {b64('export API_TOKEN=' + PW)} | base64 -d > /etc/env",
        ("generic-secret-assignment", 1),
    ),
    (f"RUN echo {b64('hello world, nothing here')} | base64 -d", None),
    ("u=" + urllib.parse.quote(f"amqp://app:{PW}@mq/", safe=""), ("url-with-password", 1)),
    ("u=" + urllib.parse.quote("https://example.org/a?b=c", safe=""), None),
]


@pytest.mark.parametrize(("text", "want"), CASES)
def test_decoder_table(text: str, want: tuple[str, int] | None) -> None:
    chunk = Chunk((text + "\n").encode(), Location("path", "t", "f"))
    got = [(f.rule_id, f.location.line) for f in Scanner()._chunk_findings(chunk)]
    assert got == ([want] if want else [])


def test_binary_secret_data_is_key_material() -> None:
    raw = base64.b64encode(RNG.randbytes(32)).decode()
    text = f"kind: Secret\ndata:\n  signing.key: {raw}\n"
    [f] = Scanner()._chunk_findings(Chunk(text.encode(), Location("path", "t", "f")))
    assert (f.rule_id, f.location.line) == ("encoded-key-material", 3)


def test_unescape_and_b64decode() -> None:
    assert unescape(b'a\\nb\\u003d\\"c') == b'a\nb="c'
    assert b64decode(b"aGk") == b"hi"
    assert b64decode(b"a") is None
