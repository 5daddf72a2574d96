"""Settings: env prefix ``VAULTSIDE_``, nested with ``__``, optional ``vaultside.toml``.

Sections are plain ``BaseModel``s. Secret material is never a plain ``str`` here: it is a
``SecretStr`` or, preferably, a path to a file read by the component that needs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class ServerSettings(BaseModel):
    """The HTTP listener."""

    listen: str = "127.0.0.1:8200"
    unix_socket: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    tls_require_client_cert: bool = False
    workers: int = Field(default=1, ge=1, le=64)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)


class StorageSettings(BaseModel):
    """Where ciphertext lives."""

    kind: Literal["sqlite", "postgres"] = "sqlite"
    path: Path = Path("vaultside.db")
    postgres_dsn: SecretStr | None = None
    postgres_dsn_file: Path | None = None
    postgres_pool_min: int = 1
    postgres_pool_max: int = 10


class SealSettings(BaseModel):
    """Where the root key comes from."""

    kind: Literal["file", "passphrase", "vault-transit"] = "file"
    key_file: Path = Path("vaultside.key")
    passphrase_file: Path | None = None
    transit_broker: str | None = None
    transit_mount: str = "transit"
    transit_key: str = "vaultside"


class AuditSettings(BaseModel):
    """Where audit records go; the HMAC key keeps values out of them."""

    file: Path | None = Path("audit.log")
    # None means ``<data_dir>/audit-hmac.key`` (see ``wiring.audit_key_file``).
    hmac_key_file: Path | None = None
    stdout: bool = False
    # fsync the audit file after each batch (durable across power loss; slower).
    fsync: bool = False


class AuthSettings(BaseModel):
    """Token housekeeping."""

    # How often expired tokens' records are reclaimed, by one server at a time; 0 = never.
    token_tidy_interval: float = Field(default=600.0, ge=0, le=7 * 86400)


class KVSettings(BaseModel):
    """Limits of the local secret store."""

    max_value_bytes: int = Field(default=64 * 1024, ge=1)
    default_max_versions: int = Field(default=10, ge=0)


class BrokerSettings(BaseModel):
    """One named Vault/OpenBao connection (``brokers.<name>``); credentials are file paths."""

    address: str
    namespace: str | None = None
    ca_file: Path | None = None
    tls_verify: bool = True
    client_cert_file: Path | None = None
    client_key_file: Path | None = None
    request_timeout: float = Field(default=10.0, gt=0)
    auth_method: Literal["token", "approle", "jwt"] = "token"
    auth_mount: str | None = None
    token_file: Path | None = None
    role_id_file: Path | None = None
    secret_id_file: Path | None = None
    secret_id_wrapped: bool = False
    jwt_file: Path | None = None
    jwt_role: str | None = None
    kv_versions: dict[str, Literal[1, 2]] = {}
    cache_ttl: float = Field(default=30.0, ge=0)
    cache_ttls: dict[str, float] = {}
    max_staleness: float = Field(default=300.0, ge=0)
    renew_fraction: float = Field(default=2 / 3, gt=0, lt=1)
    # Several servers: the lease-renewal leader's storage lease; followers re-read every third.
    lease_lock_ttl: float = Field(default=15.0, gt=0)
    # Dynamic leases: replaced this fraction of their max TTL ahead of its end, never handed
    # out with less than min_remaining seconds of life left (see docs/broker.md).
    replace_fraction: float = Field(default=1 / 3, gt=0, lt=1)
    min_remaining: float = Field(default=10.0, ge=0)
    # A held lease is looked up upstream at most this often on reads (revoked → new one); <0 off.
    lease_verify_interval: float = Field(default=1.0)


class AdmissionSettings(BaseModel):
    """Admission rules for secret delivery: each deny / warn / off."""

    privileged: Literal["deny", "warn", "off"] = "deny"
    root_user: Literal["deny", "warn", "off"] = "warn"
    docker_socket: Literal["deny", "warn", "off"] = "deny"
    no_limits: Literal["deny", "warn", "off"] = "warn"
    writable_rootfs: Literal["deny", "warn", "off"] = "warn"
    image_not_allowed: Literal["deny", "warn", "off"] = "deny"
    image_findings: Literal["deny", "warn", "off"] = "warn"
    allowed_images: list[str] = []


class InjectSettings(BaseModel):
    """The Docker volume plugin (``vaultside plugin`` or in ``serve``) and its admission."""

    plugin_name: str = Field(default="vaultside", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    plugin_socket_dir: Path = Path("/run/docker/plugins")
    state_dir: Path = Path("inject")
    mount_root: Path = Path("/run/vaultside/volumes")
    roles_file: Path | None = None
    docker_host: str | None = None
    docker_data_root: Path | None = None
    audit_file: Path = Path("inject-audit.log")
    admission: AdmissionSettings = AdmissionSettings()
    # Run the plugin (and re-delivery) inside ``serve`` instead of ``vaultside plugin``.
    plugin_in_server: bool = False
    # The API URL that in-server plugin uses; default: derived from server.listen/unix_socket.
    server_addr: str | None = None


class RotationSettings(BaseModel):
    """The rotation scheduler (one leader per store, chosen by a storage lease)."""

    scheduler: bool = True
    # Leader and per-secret leases; a crashed holder's lease frees up after this long, and
    # another server takes over within lease_ttl * 4/3 (renewed every third: docs/replicas.md).
    lease_ttl: float = Field(default=4.0, ge=1.0, le=3600.0)
    concurrency: int = Field(default=4, ge=1, le=64)
    # How often the volume plugin re-checks mounted secrets for rotated values.
    redeliver_interval: float = Field(default=0.5, ge=0.05, le=3600.0)


class ScanSettings(BaseModel):
    """Leak scans inside the server."""

    # Seconds between scans of running containers (leader only, DOCKER_HOST); 0 = off.
    periodic_interval: float = Field(default=0.0, ge=0, le=7 * 86400)
    # How many finished periodic scan records are kept in storage.
    results_keep: int = Field(default=50, ge=1, le=1000)


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

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    def resolve(self, path: Path) -> Path:
        """A configured path made absolute against ``data_dir``."""
        return path if path.is_absolute() else (self.data_dir / path)
