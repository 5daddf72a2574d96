"""A read-only client of the OCI distribution API: auth, TLS, manifests, blobs.

References, credentials and platform selection (pure, no I/O) live in ``imageref``.

What it guarantees:

- Manifests are fetched with every Docker v2 and OCI media type accepted; an index (manifest
  list) is resolved to the manifest of one platform (``os/arch[/variant]``).
- Auth follows the registry's ``WWW-Authenticate`` challenge: ``Bearer`` (token endpoint,
  with Basic credentials when known, anonymous otherwise) or ``Basic``. Credentials come from
  ``VAULTSIDE_REGISTRY_USERNAME``/``VAULTSIDE_REGISTRY_PASSWORD`` or ``~/.docker/config.json``
  (``$DOCKER_CONFIG``) ``auths.<host>.auth``.
- TLS is verified (system CAs, or ``ca_file``). Plain http is used only for loopback hosts:
  when asked (``plain_http``) or when a loopback registry does not speak TLS at all. A token
  endpoint on plain http is refused unless it is loopback too.
- Blobs are streamed: ``open_blob`` returns a reader that checks size and digest as the bytes
  pass; nothing is written to disk.

# SECURITY: credentials and tokens never appear in errors or logs; they are sent only to the
# registry host (requests drops ``Authorization`` on a redirect to another host, e.g. the
# storage backend a blob is redirected to) and to the token endpoint the registry names.

Errors callers handle (all ``VaultsideError``): ``InvalidRequestError`` (bad reference,
plain http to a non-loopback host, malformed manifest), ``PermissionDeniedError`` (401/403),
``NotFoundError`` (no such manifest or platform), ``UpstreamUnavailableError`` (connection or
TLS failure), ``UpstreamError`` (other registry errors, digest mismatch).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from vaultside.errors import (
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    UpstreamError,
    UpstreamUnavailableError,
)
from vaultside.netloc import is_loopback
from vaultside.scan.sources.imageref import (
    DIGEST_RE,
    Credentials,
    Reference,
    host_platform,
    select_platform,
)

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
_ACCEPT = ", ".join((*INDEX_TYPES, *MANIFEST_TYPES))
_MAX_MANIFEST = 4 * 1024 * 1024
_MAX_CONFIG = 8 * 1024 * 1024
_TIMEOUT = (10.0, 60.0)  # connect, read (between bytes)
_CHALLENGE_RE = re.compile(r'(\w+)="([^"]*)"')


class _Verified(io.RawIOBase):
    """Reads exactly ``size`` bytes of a blob response and checks its digest at the end."""

    def __init__(self, resp: requests.Response, digest: str, size: int | None) -> None:
        algo, _, self._want = digest.partition(":")
        self._h = hashlib.new(algo)
        self._resp = resp
        self._raw = resp.raw
        self._size = size
        self._got = 0
        self._digest = digest
        self._checked = False

    def readable(self) -> bool:
        return True

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]
        try:
            data = self._raw.read(len(b), decode_content=False)
        except (requests.RequestException, OSError) as exc:
            raise UpstreamUnavailableError(
                f"blob {self._digest[:19]}: read failed ({exc})"
            ) from exc
        except Exception as exc:  # urllib3's ProtocolError and friends
            raise UpstreamUnavailableError(
                f"blob {self._digest[:19]}: read failed ({type(exc).__name__})"
            ) from exc
        n = len(data)
        if n == 0:
            self._check()
            return 0
        self._got += n
        if self._size is not None and self._got > self._size:
            raise UpstreamError(f"blob {self._digest[:19]} is larger than its manifest says")
        self._h.update(data)
        b[:n] = data
        return n

    def _check(self) -> None:
        if self._checked:
            return
        self._checked = True
        if self._size is not None and self._got != self._size:
            raise UpstreamError(
                f"blob {self._digest[:19]} ended after {self._got} of {self._size} bytes"
            )
        if self._h.hexdigest() != self._want:
            raise UpstreamError(f"blob {self._digest[:19]} does not match its digest")

    def finish(self) -> None:
        """Read what is left (padding the tar reader did not need) and check the digest."""
        while self.read(1 << 20):
            pass
        self._check()

    def close(self) -> None:
        self._resp.close()
        super().close()


class RegistryClient:
    """One repository on one registry; one ``requests.Session`` (connection reuse)."""

    def __init__(
        self,
        ref: Reference,
        *,
        credentials: Credentials | None = None,
        ca_file: Path | None = None,
        plain_http: bool = False,
    ) -> None:
        if plain_http and not is_loopback(ref.host):
            raise InvalidRequestError(
                f"plain http is only allowed to loopback registries, not {ref.host}"
            )
        self.ref = ref
        self.credentials = credentials
        self._session = requests.Session()
        self._session.trust_env = False  # no proxies or .netrc: credentials go where we say
        self._session.verify = str(ca_file) if ca_file is not None else True
        self._ca_file = ca_file
        self._scheme = "http" if plain_http else "https"
        self._auth: str | None = None  # the Authorization header value that worked

    def close(self) -> None:
        """Close pooled connections."""
        self._session.close()

    def _url(self, path: str) -> str:
        return f"{self._scheme}://{self.ref.host}/v2/{self.ref.repository}/{path}"

    def _send(self, method: str, url: str, headers: dict[str, str], stream: bool) -> Any:
        try:
            return self._session.request(
                method, url, headers=headers, stream=stream, timeout=_TIMEOUT
            )
        except requests.exceptions.SSLError as exc:
            if (
                self._scheme == "https"
                and is_loopback(self.ref.host)
                and "CERTIFICATE_VERIFY_FAILED" not in str(exc)
                and "certificate" not in str(exc).lower()
            ):
                # a loopback registry that does not speak TLS: plain http, as docker does
                self._scheme = "http"
                return self._send(method, url.replace("https://", "http://", 1), headers, stream)
            hint = "" if self._ca_file else "; pass --ca-file with the registry's CA certificate"
            raise UpstreamUnavailableError(
                f"TLS to registry {self.ref.host} failed: {_ssl_reason(exc)}{hint}"
            ) from None
        except requests.RequestException as exc:
            raise UpstreamUnavailableError(
                f"cannot reach registry {self.ref.host} ({type(exc).__name__})"
            ) from None

    def _request(self, path: str, accept: str | None = None, stream: bool = False) -> Any:
        headers = {"Accept": accept} if accept else {}
        if self._auth:
            headers["Authorization"] = self._auth
        resp = self._send("GET", self._url(path), headers, stream)
        if resp.status_code == 401:
            challenge = resp.headers.get("WWW-Authenticate", "")
            resp.close()
            self._auth = self._authenticate(challenge)
            headers["Authorization"] = self._auth
            resp = self._send("GET", self._url(path), headers, stream)
        if resp.status_code in (401, 403):
            resp.close()
            raise PermissionDeniedError(self._denied(resp.status_code))
        return resp

    def _denied(self, status: int) -> str:
        who = (
            f"with credentials from {self.credentials.origin}"
            if self.credentials
            else "anonymously (no credentials: set VAULTSIDE_REGISTRY_USERNAME/PASSWORD"
            " or docker login)"
        )
        return f"registry {self.ref.host} refused pull of {self.ref.repository} ({status}) {who}"

    def _authenticate(self, challenge: str) -> str:
        scheme, _, params_text = challenge.partition(" ")
        params = dict(_CHALLENGE_RE.findall(params_text))
        if scheme.lower() == "basic":
            if self.credentials is None:
                raise PermissionDeniedError(self._denied(401))
            return self.credentials.basic()
        if scheme.lower() != "bearer" or "realm" not in params:
            raise UpstreamError(f"registry {self.ref.host}: unsupported auth challenge {scheme!r}")
        realm = params["realm"]
        realm_host = urlsplit(realm).netloc
        if not realm.startswith("https://") and not (
            realm.startswith("http://") and is_loopback(realm_host)
        ):
            raise UpstreamError(
                f"registry {self.ref.host}: token endpoint {realm_host} is not https; refused"
            )
        query = {"service": params.get("service", ""), "scope": params.get("scope", "")}
        if not query["scope"]:
            query["scope"] = f"repository:{self.ref.repository}:pull"
        headers = {"Authorization": self.credentials.basic()} if self.credentials else {}
        try:
            resp = self._session.get(realm, params=query, headers=headers, timeout=_TIMEOUT)
        except requests.exceptions.SSLError as exc:
            raise UpstreamUnavailableError(
                f"TLS to token endpoint {realm_host} failed: {_ssl_reason(exc)}"
            ) from None
        except requests.RequestException as exc:
            raise UpstreamUnavailableError(
                f"cannot reach token endpoint {realm_host} ({type(exc).__name__})"
            ) from None
        if resp.status_code in (401, 403):
            raise PermissionDeniedError(self._denied(resp.status_code))
        try:
            body = resp.json()
            token = body.get("token") or body.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if resp.status_code != 200 or not isinstance(token, str) or not token:
            raise UpstreamError(
                f"token endpoint {realm_host} answered {resp.status_code} without a token"
            )
        return f"Bearer {token}"

    def _check(self, resp: Any, what: str) -> None:
        if resp.status_code == 200:
            return
        detail = ""
        try:
            errs = resp.json().get("errors") or []
            detail = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errs)[:300]
        except (ValueError, AttributeError):
            pass
        resp.close()
        if resp.status_code == 404:
            raise NotFoundError(f"{what} not found on {self.ref.host}")
        raise UpstreamError(
            f"registry {self.ref.host} answered {resp.status_code} for {what}"
            + (f" ({detail})" if detail else "")
        )

    def _json(self, path: str, what: str, limit: int, accept: str | None = None) -> tuple[Any, str]:
        resp = self._request(path, accept)
        self._check(resp, what)
        body = resp.content
        if len(body) > limit:
            raise UpstreamError(f"{what} is larger than {limit} bytes")
        try:
            return json.loads(body), resp.headers.get("Content-Type", "").split(";")[0]
        except ValueError:
            raise UpstreamError(f"{what} on {self.ref.host} is not JSON") from None

    def manifest(self, platform: str | None = None) -> dict[str, Any]:
        """The image manifest of the reference (an index resolved to ``platform``)."""
        ref = self.ref.ref
        what = f"manifest {self.ref.repository}:{ref}"
        doc, ctype = self._json(f"manifests/{ref}", what, _MAX_MANIFEST, _ACCEPT)
        for _ in range(2):  # an index may point at another index, once
            media = doc.get("mediaType") if isinstance(doc, dict) else None
            media = media or ctype
            if not isinstance(doc, dict) or not (media in INDEX_TYPES or "manifests" in doc):
                break
            desc = select_platform(doc, platform or host_platform())
            digest = str(desc.get("digest", ""))
            doc, ctype = self._json(
                f"manifests/{digest}", f"manifest {digest}", _MAX_MANIFEST, _ACCEPT
            )
        if not isinstance(doc, dict) or not isinstance(doc.get("layers"), list):
            if isinstance(doc, dict) and doc.get("schemaVersion") == 1:
                raise InvalidRequestError(f"{what}: schema 1 manifests are not supported")
            raise UpstreamError(f"{what}: not an image manifest")
        return doc

    def config(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """The image config blob named by ``manifest`` (digest checked)."""
        desc = manifest.get("config") or {}
        digest = str(desc.get("digest", ""))
        if not DIGEST_RE.fullmatch(digest):
            raise UpstreamError("manifest has no valid config digest")
        resp = self._request(f"blobs/{digest}", stream=True)
        self._check(resp, f"config blob {digest[:19]}")
        reader = _Verified(resp, digest, int(desc.get("size") or 0) or None)
        try:
            data = reader.read(_MAX_CONFIG + 1)
            if len(data) > _MAX_CONFIG:
                raise UpstreamError(f"config blob is larger than {_MAX_CONFIG} bytes")
            reader.finish()
        finally:
            reader.close()
        try:
            cfg = json.loads(data)
        except ValueError:
            raise UpstreamError(f"config blob {digest[:19]} is not JSON") from None
        return cfg if isinstance(cfg, dict) else {}

    def open_blob(self, digest: str, size: int | None) -> _Verified:
        """A streamed, digest-checked reader of one blob (call ``finish`` then ``close``)."""
        if not DIGEST_RE.fullmatch(digest):
            raise UpstreamError("manifest names a layer without a valid digest")
        resp = self._request(f"blobs/{digest}", stream=True)
        self._check(resp, f"layer blob {digest[:19]}")
        return _Verified(resp, digest, size)


def _ssl_reason(exc: Exception) -> str:
    text = str(exc)
    m = re.search(r"certificate verify failed: ([^(')\"]+)", text)
    if m:
        return f"certificate verify failed: {m.group(1).strip()}"
    m = re.search(r"\[SSL: ([A-Z_]+)\]", text)
    return m.group(1).lower().replace("_", " ") if m else type(exc).__name__
