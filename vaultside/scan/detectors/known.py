"""Known values: recognise vaultside-managed secrets verbatim without holding their plaintext.

The index holds keyed fingerprints only (BLAKE2b-128 under a random per-index key). Each value
(and its base64 / URL-safe base64 / hex encodings) is split with the same tokenizer the
scanner uses on text; its longest token is the *anchor*. Scanning extracts tokens of the
anchor lengths, fingerprints them, and on an anchor hit fingerprints the surrounding span of
the full value's length at the anchor's offset: an exact match of the whole value.

# SECURITY: the index never contains a value or a prefix of one. It does contain lengths and
# anchor offsets, and whoever holds the key can test guesses offline — so it is handed only to
# callers with the ``scan`` capability, and a fresh key is drawn for every index.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

from vaultside.errors import InvalidRequestError
from vaultside.scan.base import Candidate, KnownMatch, Secret, Severity

MIN_VALUE_LEN = 8  # shorter managed values would match by coincidence; they are not indexed
MIN_ANCHOR_LEN = 6
MAX_ANCHOR_LEN = 512
_DELIMS = rb"\s\"'`,;=<>(){}\[\]|\\:@/&?#"
_TOKEN = re.compile(rb"[^" + _DELIMS + rb"]+")
STATUS_SEVERITY = {
    "current": Severity.CRITICAL,
    "previous": Severity.HIGH,
    "retired": Severity.MEDIUM,
}


def _encodings(raw: bytes) -> Iterator[tuple[str, bytes]]:
    yield "raw", raw
    yield "base64", base64.b64encode(raw)
    yield "base64url", base64.urlsafe_b64encode(raw).rstrip(b"=")
    yield "hex", binascii.hexlify(raw)


@dataclass(frozen=True, slots=True)
class _Anchor:
    offset: int  # where the anchor token starts inside the (encoded) value
    anchor_len: int
    length: int  # length of the whole (encoded) value
    full: bytes
    entry: int
    encoding: str


class KnownValueIndex:
    """Keyed fingerprints of managed secret values, and the matcher that uses them."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key if key is not None else secrets.token_bytes(32)
        self.entries: list[KnownMatch] = []
        self._anchors: dict[bytes, list[_Anchor]] = {}
        self.skipped = 0  # values too short (or without a long enough token) to index
        self._anchor_lens: tuple[int, int] = (0, 0)

    def _fp(self, data: bytes) -> bytes:
        return hashlib.blake2b(data, key=self._key, digest_size=16).digest()

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, path: str, field: str, version: int, status: str, value: str) -> bool:
        """Index one value; False if it is too short to recognise safely."""
        raw = value.encode()
        if len(raw) < MIN_VALUE_LEN:
            self.skipped += 1
            return False
        entry = len(self.entries)
        self.entries.append(KnownMatch(path, field, version, status))
        added = False
        for encoding, enc in _encodings(raw):
            tokens = [m for m in _TOKEN.finditer(enc) if m.end() - m.start() >= MIN_ANCHOR_LEN]
            if not tokens:
                continue
            best = max(tokens, key=lambda m: m.end() - m.start())
            if best.end() - best.start() > MAX_ANCHOR_LEN:
                continue
            self._add_anchor(
                self._fp(best.group()),
                _Anchor(
                    best.start(),
                    best.end() - best.start(),
                    len(enc),
                    self._fp(enc),
                    entry,
                    encoding,
                ),
            )
            added = True
        if not added:
            self.skipped += 1
        return added

    def _add_anchor(self, fp: bytes, anchor: _Anchor) -> None:
        self._anchors.setdefault(fp, []).append(anchor)
        lo, hi = self._anchor_lens
        n = anchor.anchor_len
        self._anchor_lens = (min(lo, n) if lo else n, max(hi, n))

    def matcher(self) -> KnownValueDetector:
        """A detector over this index."""
        return KnownValueDetector(self)

    def to_json(self) -> dict[str, object]:
        """A portable form for a client-side scan: key, entries and anchor fingerprints only."""
        return {
            "algorithm": "blake2b-128-keyed/anchor-v1",
            "key": base64.b64encode(self._key).decode(),
            "entries": [
                {"path": e.path, "field": e.field, "version": e.version, "status": e.status}
                for e in self.entries
            ],
            "anchors": [
                {
                    "fp": fp.hex(),
                    "offset": a.offset,
                    "length": a.length,
                    "full": a.full.hex(),
                    "entry": a.entry,
                    "encoding": a.encoding,
                    "anchor_len": a.anchor_len,
                }
                for fp, anchors in self._anchors.items()
                for a in anchors
            ],
        }

    @classmethod
    def from_json(cls, obj: object) -> KnownValueIndex:
        """Parse ``to_json`` output; ``InvalidRequestError`` if malformed."""
        try:
            if not isinstance(obj, dict):
                raise TypeError("expected an object")
            if obj["algorithm"] != "blake2b-128-keyed/anchor-v1":
                raise ValueError("unsupported algorithm")
            idx = cls(base64.b64decode(obj["key"], validate=True))
            for e in obj["entries"]:
                idx.entries.append(
                    KnownMatch(str(e["path"]), str(e["field"]), int(e["version"]), str(e["status"]))
                )
            for a in obj["anchors"]:
                entry = int(a["entry"])
                if not 0 <= entry < len(idx.entries):
                    raise ValueError("anchor names no entry")
                idx._add_anchor(
                    bytes.fromhex(a["fp"]),
                    _Anchor(
                        int(a["offset"]),
                        int(a["anchor_len"]),
                        int(a["length"]),
                        bytes.fromhex(a["full"]),
                        entry,
                        str(a["encoding"]),
                    ),
                )
            return idx
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise InvalidRequestError(f"not a known-value index: {exc}") from exc

    @classmethod
    async def build(
        cls,
        values: AsyncIterator[tuple[str, int, dict[str, str]]],
        status_of: Callable[[str, int], Awaitable[str]],
    ) -> KnownValueIndex:
        """An index of every value ``values`` yields (``KVStore.all_values()``).

        ``status_of(path, version)`` says current / previous / retired.
        """
        idx = cls()
        async for path, version, data in values:
            status = await status_of(path, version)
            for field, value in data.items():
                # SECURITY: only the keyed fingerprint of ``value`` is kept.
                idx.add(path, field, version, status, value)
        return idx


class KnownValueDetector:
    """Finds indexed values in bytes: fingerprint candidate tokens, confirm the full span."""

    def __init__(self, index: KnownValueIndex) -> None:
        self.index = index
        lo, hi = index._anchor_lens
        self._lens = frozenset(a.anchor_len for al in index._anchors.values() for a in al)
        run = rb"[^" + _DELIMS + rb"]"
        # Maximal runs of non-delimiters with an anchor's length: the only tokens worth hashing.
        self._token = (
            re.compile(rb"(?<!%s)%s{%d,%d}(?!%s)" % (run, run, lo, hi, run)) if hi else None
        )

    def detect(self, data: bytes) -> Iterator[Candidate]:
        """Candidates for every verbatim (or encoded) managed value in ``data``."""
        if self._token is None:
            return
        idx = self.index
        anchors = idx._anchors
        fp = idx._fp
        lens = self._lens
        hits = [t for t in set(self._token.findall(data)) if len(t) in lens and fp(t) in anchors]
        done: set[tuple[int, int]] = set()
        for tok in hits:
            for anchor in anchors[fp(tok)]:
                pos = data.find(tok)
                while pos >= 0:
                    start = pos - anchor.offset
                    end = start + anchor.length
                    if (
                        (anchor.entry, start) not in done
                        and start >= 0
                        and end <= len(data)
                        and fp(data[start:end]) == anchor.full
                    ):
                        done.add((anchor.entry, start))
                        known = idx.entries[anchor.entry]
                        known = KnownMatch(
                            known.path, known.field, known.version, known.status, anchor.encoding
                        )
                        yield Candidate(
                            rule_id="vaultside-managed-secret",
                            description=f"vaultside-managed secret {known.path}#{known.field}",
                            severity=STATUS_SEVERITY.get(known.status, Severity.HIGH),
                            secret=Secret(data[start:end].decode("utf-8", "replace")),
                            start=start,
                            end=end,
                            known=known,
                        )
                    pos = data.find(tok, pos + 1)
