"""Rotation policies: what to generate, where to set it, and when — parsed and validated.

``parse_policy`` turns a JSON object into a ``RotationPolicy`` or raises
``InvalidRequestError`` whose details name each offending field (``cron: ...``,
``target: ...``, ``generator.password: ...``) and never echo a value.
"""

from __future__ import annotations

import string
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from vaultside.durations import Duration
from vaultside.errors import InvalidRequestError
from vaultside.refs import parse_ref
from vaultside.rotation.catalog import NAME_PATTERN as TARGET_NAME
from vaultside.rotation.cron import CronError, CronSchedule

_FIELD_NAME = r"^[A-Za-z0-9._-]{1,128}$"
_IDENT = r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$"
CLASSES: dict[str, str] = {
    "lower": string.ascii_lowercase,
    "upper": string.ascii_uppercase,
    "digit": string.digits,
    "symbol": "!#%+-.:=?@^_~",
}


Seconds = Duration
FieldName = Annotated[str, Field(pattern=_FIELD_NAME)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- generators --------------------------------------------------------------------------------


class PasswordSpec(_Model):
    """Random password from character classes, with exclusions and required classes."""

    kind: Literal["password"]
    field: FieldName = "password"
    length: Annotated[int, Field(ge=8, le=1024)] = 32
    classes: list[Literal["lower", "upper", "digit", "symbol"]] = ["lower", "upper", "digit"]
    required: list[Literal["lower", "upper", "digit", "symbol"]] | None = None
    exclude: Annotated[str, Field(max_length=256)] = ""

    @model_validator(mode="after")
    def _possible(self) -> PasswordSpec:
        if not self.classes:
            raise ValueError("classes must name at least one character class")
        required = self.required if self.required is not None else self.classes
        missing = [c for c in required if c not in self.classes]
        if missing:
            raise ValueError(f"required classes {missing} are not in classes")
        for cls in set(self.classes):
            if not set(CLASSES[cls]) - set(self.exclude):
                raise ValueError(f"exclude removes every character of class {cls!r}")
        if len(set(required)) > self.length:
            raise ValueError("length is shorter than the number of required classes")
        return self


class BytesSpec(_Model):
    """Random bytes, encoded as hex, base64 or base64url."""

    kind: Literal["bytes"]
    field: FieldName = "value"
    length: Annotated[int, Field(ge=8, le=4096)] = 32
    encoding: Literal["hex", "base64", "base64url"] = "base64url"


class TokenSpec(_Model):
    """An API-style token: a fixed prefix plus random base62 characters."""

    kind: Literal["token"]
    field: FieldName = "token"
    prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{0,32}$")] = ""
    length: Annotated[int, Field(ge=16, le=256)] = 40


class KeyPairSpec(_Model):
    """A key pair: private key PEM plus public key as PEM and OpenSSH."""

    kind: Literal["keypair"]
    algorithm: Literal["rsa", "ecdsa", "ed25519"] = "ed25519"
    bits: Literal[2048, 3072, 4096] = 3072
    curve: Literal["p256", "p384", "p521"] = "p256"
    field_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{0,64}$")] = ""


GeneratorSpec = Annotated[
    PasswordSpec | BytesSpec | TokenSpec | KeyPairSpec, Field(discriminator="kind")
]


# -- targets -----------------------------------------------------------------------------------


class KvTargetSpec(_Model):
    """vaultside's own store only."""

    kind: Literal["kv"]


class VaultKvTargetSpec(_Model):
    """A new version in a Vault/OpenBao KV v2 mount, written through a configured broker."""

    kind: Literal["vault-kv"]
    broker: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    mount: Annotated[str, Field(pattern=r"^[A-Za-z0-9._/-]{1,128}$")]
    path: Annotated[str, Field(pattern=r"^[A-Za-z0-9._/-]{1,512}$")]


class PostgresTargetSpec(_Model):
    """A PostgreSQL role password, changed over an admin connection."""

    kind: Literal["postgres"]
    # A secret reference (``kv:infra/pg-admin#dsn``) to the admin connection's DSN.
    admin_dsn_ref: str
    strategy: Literal["single", "alternating"] = "single"
    roles: Annotated[list[Annotated[str, Field(pattern=_IDENT)]], Field(min_length=1, max_length=2)]
    username_field: FieldName = "username"
    connect_timeout: Annotated[float, Field(gt=0, le=60)] = 10.0

    @field_validator("admin_dsn_ref")
    @classmethod
    def _ref(cls, value: str) -> str:
        try:
            parse_ref(value)
        except InvalidRequestError as exc:
            raise ValueError(exc.message) from None
        return value

    @model_validator(mode="after")
    def _roles(self) -> PostgresTargetSpec:
        want = 2 if self.strategy == "alternating" else 1
        if len(self.roles) != want or len(set(self.roles)) != want:
            raise ValueError(f"strategy {self.strategy!r} needs exactly {want} distinct role(s)")
        return self


class CommandTargetSpec(_Model):
    """A program declared by the operator (``[rotation.targets.<name>]``), named here."""

    kind: Literal["command"]
    name: Annotated[str, Field(pattern=TARGET_NAME)]


class WebhookTargetSpec(_Model):
    """A URL declared by the operator (``[rotation.targets.<name>]``), named here."""

    kind: Literal["webhook"]
    name: Annotated[str, Field(pattern=TARGET_NAME)]


# Fields of a declared target that only server configuration may hold: a policy naming any of
# them is refused with a message that names the field (the API never sets argv or URLs).
DECLARED_ONLY = ("argv", "sha256", "env", "timeout", "url", "ca_file", "allow_http")
DECLARED_KINDS = ("command", "webhook")


TargetSpec = Annotated[
    KvTargetSpec | VaultKvTargetSpec | PostgresTargetSpec | CommandTargetSpec | WebhookTargetSpec,
    Field(discriminator="kind"),
]


# -- the policy ----------------------------------------------------------------------------------


class Window(_Model):
    """Allowed time of day (UTC, ``HH:MM``); ``end`` before ``start`` wraps past midnight."""

    start: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
    end: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]

    @staticmethod
    def _minutes(hhmm: str) -> int:
        h, m = hhmm.split(":")
        return int(h) * 60 + int(m)

    @model_validator(mode="after")
    def _nonempty(self) -> Window:
        if self.start == self.end:
            raise ValueError("start and end must differ")
        return self

    def contains(self, ts: float) -> bool:
        """Whether ``ts`` falls inside the window."""
        dt = datetime.fromtimestamp(ts, UTC)
        minute = dt.hour * 60 + dt.minute
        start, end = self._minutes(self.start), self._minutes(self.end)
        if start < end:
            return start <= minute < end
        return minute >= start or minute < end

    def next_open(self, ts: float) -> float:
        """``ts`` if inside the window, else the next time the window opens."""
        if self.contains(ts):
            return ts
        day = datetime.fromtimestamp(ts, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        opening = day.timestamp() + self._minutes(self.start) * 60
        return opening if opening > ts else opening + 86400


class RotationPolicy(_Model):
    """A rotation policy on one secret path."""

    every: Seconds | None = None
    cron: str | None = None
    jitter: Seconds = 0.0
    window: Window | None = None
    grace: Seconds = 0.0
    generator: GeneratorSpec
    target: TargetSpec
    max_attempts: Annotated[int, Field(ge=1, le=20)] = 3
    backoff: Seconds = 30.0
    enabled: bool = True
    # What an in-server leak scan does when it finds this secret's CURRENT value: "report"
    # only, or "rotate" it now (no per-request rotate capability needed: the policy says so).
    on_leak: Literal["report", "rotate"] = "report"

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            schedule = CronSchedule.parse(value)
            schedule.next_after(0.0)
        except CronError as exc:
            raise ValueError(str(exc)) from None
        return schedule.expression

    @field_validator("every")
    @classmethod
    def _every(cls, value: float | None) -> float | None:
        if value is not None and value < 60:
            raise ValueError("must be at least 60 seconds")
        return value

    @model_validator(mode="after")
    def _schedule(self) -> RotationPolicy:
        if (self.every is None) == (self.cron is None):
            raise ValueError("exactly one of 'every' or 'cron' is required")
        if isinstance(self.target, PostgresTargetSpec) and not isinstance(
            self.generator, PasswordSpec | BytesSpec | TokenSpec
        ):
            raise ValueError("target postgres needs a password, bytes or token generator")
        return self

    def schedule_after(self, ts: float) -> float:
        """The next scheduled time strictly after ``ts`` (before jitter and window)."""
        if self.cron is not None:
            return CronSchedule.parse(self.cron).next_after(ts)
        assert self.every is not None
        return ts + self.every

    def to_json(self) -> dict[str, object]:
        """The policy as JSON (no secret material is ever part of a policy)."""
        return self.model_dump(mode="json", exclude_none=True)


def _describe(err: dict[str, object]) -> str:
    loc_parts = err.get("loc") or ()
    assert isinstance(loc_parts, tuple)
    loc = ".".join(str(p)[:64] for p in loc_parts) or "policy"
    if err.get("type") == "extra_forbidden":
        return f"{loc}: unknown field"
    if err.get("type") == "missing":
        return f"{loc}: field required"
    # SECURITY: pydantic's ``msg`` does not echo the input; ``input`` is dropped.
    return f"{loc}: {err.get('msg')}"


def parse_policy(obj: object) -> RotationPolicy:
    """Validate a policy document; ``InvalidRequestError`` names every bad field."""
    if not isinstance(obj, dict):
        raise InvalidRequestError("a rotation policy must be a JSON object")
    _refuse_declared_fields(obj.get("target"))
    try:
        return RotationPolicy.model_validate(obj)
    except ValidationError as exc:
        details = [_describe(dict(e)) for e in exc.errors()[:10]]
        raise InvalidRequestError("invalid rotation policy", details=details) from None


def _refuse_declared_fields(target: object) -> None:
    """``InvalidRequestError`` naming the field if a policy tries to set argv, a URL, ..."""
    if not isinstance(target, dict) or target.get("kind") not in DECLARED_KINDS:
        return
    for name in DECLARED_ONLY:
        if name in target:
            # SECURITY: whatever runs code or sends data out is declared by the operator.
            raise InvalidRequestError(
                f"target.{name}: not accepted through the API; {target['kind']} targets are "
                "declared by the operator in the server's configuration "
                "([rotation.targets.<name>]) and a policy names one with target.name"
            )
