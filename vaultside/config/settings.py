"""Settings: env prefix ``VAULTSIDE_``, nested with ``__``, optional TOML file.

The file is ``$VAULTSIDE_CONFIG`` (the CLI's ``--config``) or else ``./vaultside.toml``; build
``Settings`` through ``vaultside.config.loader.load_settings``, which turns every way a
configuration can be wrong into one ``ConfigError`` line. Unknown keys are errors at every
level; every seconds value also takes a duration (``"10m"``, ``"1h30m"``, see ``durations``).

Sections are plain ``BaseModel``s deriving from ``Section`` (unknown keys forbidden). Secret
material is never a plain ``str`` here: it is a ``SecretStr`` or, preferably, a path to a
file read by the component that needs it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from vaultside.durations import Duration


class Section(BaseModel):
    """Base of every settings section: an unknown key is an error naming it (``server.workrs``)."""

    model_config = ConfigDict(extra="forbid")


class ServerSettings(Section):
    """The HTTP listener."""

    listen: str = "127.0.0.1:8200"
    unix_socket: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    tls_require_client_cert: bool = False
    workers: int = Field(default=1, ge=1, le=64)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Reverse proxies (CIDRs) whose X-Forwarded-For names the client; from any other peer
    # the header is ignored. See docs/auth-audit.md.
    trusted_proxies: list[IPvAnyNetwork] = []
    # Seconds a client has to send a complete request head (slow-header clients are dropped).
    header_read_timeout: Duration = Field(default=10.0, gt=0, le=3600)
    # Seconds an idle kept-alive connection stays open between requests.
    keepalive_timeout: Duration = Field(default=30.0, gt=0, le=3600)


class MetricsSettings(Section):
    """Where ``/metrics`` is served, and whether it needs a token (docs/operations.md)."""

    # ``host:port`` of a listener that serves /metrics only; the API port then answers 404
    # there. None: /metrics stays on the API listener.
    listen: str | None = None
    # A token with ``read`` on ``sys/metrics`` is needed (on whichever listener serves it).
    require_token: bool = False


class StorageSettings(Section):
    """Where ciphertext lives."""

    kind: Literal["sqlite", "postgres"] = "sqlite"
    path: Path = Path("vaultside.db")
    postgres_dsn: SecretStr | None = None
    postgres_dsn_file: Path | None = None
    postgres_pool_min: int = 1
    postgres_pool_max: int = 10


class SealSettings(Section):
    """Where the root key comes from."""

    kind: Literal["file", "passphrase", "vault-transit"] = "file"
    key_file: Path = Path("vaultside.key")
    passphrase_file: Path | None = None
    transit_broker: str | None = None
    transit_mount: str = "transit"
    transit_key: str = "vaultside"


class AuditSettings(Section):
    """Where audit records go; the HMAC key keeps values out of them."""

    file: Path | None = Path("audit.log")
    # None means ``<data_dir>/audit-hmac.key`` (see ``wiring.audit.audit_key_file``).
    hmac_key_file: Path | None = None
    stdout: bool = False
    # fsync the audit file after each batch (durable across power loss; slower).
    fsync: bool = False
    # Rotate the audit file to <file>.<last seq> once it reaches this size; 0 = never.
    max_file_bytes: int = Field(default=64 * 1024 * 1024, ge=0)
    # Denials of unidentified requests: one full record, then one summary per client per
    # interval (seconds) with the count; 0 = write every denial.
    summary_interval: Duration = Field(default=10.0, ge=0, le=3600)
    summary_max_clients: int = Field(default=1000, ge=1, le=1_000_000)
    # Names this server's audit chain (its anchor in storage) among servers sharing storage;
    # None means "<hostname>:<audit file path>" (see ``wiring.audit.audit_chain_id``).
    chain_id: str | None = Field(default=None, min_length=1, max_length=256)


# Only asymmetric signatures: an HMAC "verified" with a public key would be forgeable.
JwtAlgorithm = Literal[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"
]


class JwtSettings(Section):
    """The JWT auth method (``/v1/auth/jwt/login``): Kubernetes ServiceAccount tokens.

    Off while ``issuer`` is unset. Keys come from exactly one of ``jwks_file``, ``jwks_url``
    or ``discovery`` (OIDC discovery: ``<issuer>/.well-known/openid-configuration``).
    """

    issuer: str | None = None
    jwks_file: Path | None = None
    jwks_url: str | None = None
    discovery: bool = False
    # CA bundle for jwks_url / discovery over https (in-cluster: the ServiceAccount ca.crt).
    ca_file: Path | None = None
    # Bearer token file sent to jwks_url / discovery (if the issuer wants one).
    fetch_token_file: Path | None = None
    # Accepted audiences when a role names none.
    audiences: list[str] = Field(default=["vaultside"], min_length=1)
    algorithms: list[JwtAlgorithm] = Field(default=["RS256", "ES256"], min_length=1)
    clock_skew: Duration = Field(default=30.0, ge=0, le=300)
    # Remote keys are re-read after this long, and at most this often on an unknown kid.
    jwks_cache_ttl: Duration = Field(default=3600.0, ge=1, le=86400)
    jwks_refetch_interval: Duration = Field(default=10.0, ge=0, le=3600)
    fetch_timeout: Duration = Field(default=10.0, gt=0, le=120)

    @model_validator(mode="after")
    def _one_key_source(self) -> JwtSettings:
        sources = [self.jwks_file is not None, self.jwks_url is not None, self.discovery]
        if self.issuer is not None and sum(sources) != 1:
            raise ValueError("set exactly one of jwks_file, jwks_url or discovery")
        return self


class AuthSettings(Section):
    """Token housekeeping and the JWT auth method."""

    # How often expired tokens' records are reclaimed, by one server at a time; 0 = never.
    token_tidy_interval: Duration = Field(default=600.0, ge=0, le=7 * 86400)
    # Failed-authentication budget per client: ``throttle_burst`` answered at once, then
    # ``throttle_rate`` per second; a failure beyond ``throttle_max_wait`` is answered 429.
    throttle_burst: int = Field(default=10, ge=1, le=10_000)
    throttle_rate: float = Field(default=1.0, gt=0, le=10_000)
    throttle_max_wait: Duration = Field(default=8.0, ge=0, le=300)
    throttle_max_clients: int = Field(default=10_000, ge=1, le=10_000_000)
    jwt: JwtSettings = JwtSettings()


class KVSettings(Section):
    """Limits of the local secret store."""

    max_value_bytes: int = Field(default=64 * 1024, ge=1)
    default_max_versions: int = Field(default=10, ge=0)


class BrokerSettings(Section):
    """One named Vault/OpenBao connection (``brokers.<name>``); credentials are file paths."""

    address: str
    namespace: str | None = None
    ca_file: Path | None = None
    tls_verify: bool = True
    client_cert_file: Path | None = None
    client_key_file: Path | None = None
    request_timeout: Duration = Field(default=10.0, gt=0)
    auth_method: Literal["token", "approle", "jwt"] = "token"
    auth_mount: str | None = None
    token_file: Path | None = None
    role_id_file: Path | None = None
    secret_id_file: Path | None = None
    secret_id_wrapped: bool = False
    jwt_file: Path | None = None
    jwt_role: str | None = None
    kv_versions: dict[str, Literal[1, 2]] = {}
    cache_ttl: Duration = Field(default=30.0, ge=0)
    cache_ttls: dict[str, Duration] = {}
    max_staleness: Duration = Field(default=300.0, ge=0)
    renew_fraction: float = Field(default=2 / 3, gt=0, lt=1)
    # Several servers: the lease-renewal leader's storage lease; followers re-read every third.
    lease_lock_ttl: Duration = Field(default=15.0, gt=0)
    # Dynamic leases: replaced this fraction of their max TTL ahead of its end, never handed
    # out with less than min_remaining seconds of life left (see docs/broker.md).
    replace_fraction: float = Field(default=1 / 3, gt=0, lt=1)
    min_remaining: Duration = Field(default=10.0, ge=0)
    # A held lease is looked up upstream at most this often on reads (revoked → new one); <0 off.
    lease_verify_interval: float = Field(default=1.0)


class AdmissionSettings(Section):
    """Admission rules for secret delivery: each deny / warn / off."""

    privileged: Literal["deny", "warn", "off"] = "deny"
    root_user: Literal["deny", "warn", "off"] = "warn"
    docker_socket: Literal["deny", "warn", "off"] = "deny"
    no_limits: Literal["deny", "warn", "off"] = "warn"
    writable_rootfs: Literal["deny", "warn", "off"] = "warn"
    image_not_allowed: Literal["deny", "warn", "off"] = "deny"
    image_findings: Literal["deny", "warn", "off"] = "warn"
    allowed_images: list[str] = []


class InjectSettings(Section):
    """The Docker volume plugin (``vaultside plugin`` or in ``serve``) and its admission."""

    plugin_name: str = Field(default="vaultside", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    plugin_socket_dir: Path = Path("/run/docker/plugins")
    state_dir: Path = Path("inject")
    mount_root: Path = Path("/run/vaultside/volumes")
    roles_file: Path | None = None
    docker_host: str | None = None
    docker_data_root: Path | None = None
    # How the plugin finds the container a volume is mounted for: "api" (the engine's container
    # list) or "engine_state" (read-only scan of <docker_data_root>/containers; no Docker API,
    # used by the managed plugin, which has no Docker socket: reload actions are then off).
    container_lookup: Literal["api", "engine_state"] = "api"
    audit_file: Path = Path("inject-audit.log")
    admission: AdmissionSettings = AdmissionSettings()
    # Run the plugin (and re-delivery) inside ``serve`` instead of ``vaultside plugin``.
    plugin_in_server: bool = False
    # The API URL that in-server plugin uses; default: derived from server.listen/unix_socket.
    server_addr: str | None = None


class CommandTargetSettings(Section):
    """``[rotation.targets.<name>]`` with ``kind = "command"``: a program rotations may run."""

    kind: Literal["command"]
    argv: list[str] = Field(min_length=1)
    # SHA-256 (hex) of the file argv[0]; checked at start and before every run.
    sha256: str
    timeout: Duration = Field(default=30.0, gt=0, le=600)
    # Names of server environment variables the program gets; none by default.
    env: list[str] = []


class WebhookTargetSettings(Section):
    """``[rotation.targets.<name>]`` with ``kind = "webhook"``: a URL rotations may POST to."""

    kind: Literal["webhook"]
    url: str
    ca_file: Path | None = None
    # Plain http:// (the body carries the value): only to a loopback address.
    allow_http: bool = False
    timeout: Duration = Field(default=30.0, gt=0, le=600)


class RotationSettings(Section):
    """The rotation scheduler (one leader per store, chosen by a storage lease)."""

    scheduler: bool = True
    # Leader and per-secret leases; a crashed holder's lease frees up after this long, and
    # another server takes over within lease_ttl * 4/3 (renewed every third: docs/replicas.md).
    lease_ttl: Duration = Field(default=4.0, ge=1.0, le=3600.0)
    concurrency: int = Field(default=4, ge=1, le=64)
    # How often the volume plugin re-checks mounted secrets for rotated values.
    redeliver_interval: Duration = Field(default=0.5, ge=0.05, le=3600.0)
    # ``rotation status`` shows a consumer (sidecar, plugin mount) silent this long as gone
    # (more than its report interval: sidecars 60 s, plugin 30 s) and forgets it after the TTL.
    consumer_gone_after: Duration = Field(default=120.0, ge=1.0, le=86400.0)
    consumer_ttl: Duration = Field(default=86400.0, ge=1.0, le=365 * 86400.0)
    # Targets that run code or call out exist only here; policies name them (docs/rotation.md).
    targets: dict[
        str, Annotated[CommandTargetSettings | WebhookTargetSettings, Field(discriminator="kind")]
    ] = {}


class ScanSettings(Section):
    """Leak scans inside the server."""

    # Seconds between scans of running containers (leader only, DOCKER_HOST); 0 = off.
    periodic_interval: Duration = Field(default=0.0, ge=0, le=7 * 86400)
    # How many finished periodic scan records are kept in storage.
    results_keep: int = Field(default=50, ge=1, le=1000)


CONFIG_ENV = "VAULTSIDE_CONFIG"
DEFAULT_CONFIG = Path("vaultside.toml")


def config_file() -> Path:
    """The TOML file read: ``$VAULTSIDE_CONFIG`` (``--config``) or ``./vaultside.toml``."""
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


class Settings(BaseSettings):
    """Everything vaultside can be told. Built once, in the CLI."""

    model_config = SettingsConfigDict(
        env_prefix="VAULTSIDE_",
        env_nested_delimiter="__",
        toml_file="vaultside.toml",
        extra="forbid",
    )

    data_dir: Path = Path(".")
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"
    server: ServerSettings = ServerSettings()
    storage: StorageSettings = StorageSettings()
    seal: SealSettings = SealSettings()
    audit: AuditSettings = AuditSettings()
    auth: AuthSettings = AuthSettings()
    kv: KVSettings = KVSettings()
    brokers: dict[str, BrokerSettings] = {}
    inject: InjectSettings = InjectSettings()
    rotation: RotationSettings = RotationSettings()
    scan: ScanSettings = ScanSettings()
    metrics: MetricsSettings = MetricsSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=config_file())
        return (init_settings, env_settings, toml)

    def resolve(self, path: Path) -> Path:
        """A configured path made absolute against ``data_dir``."""
        return path if path.is_absolute() else (self.data_dir / path)
