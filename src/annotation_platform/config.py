"""Settings, read once from the environment (and an optional `.env` file)."""

from __future__ import annotations

import secrets
from enum import StrEnum
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends, Request
from limits import parse as parse_limit
from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from annotation_platform.core.crypto import KeyRing, KeyRingError, generate_key_entry

SECRET_KEY_FILE = "secret_key"  # noqa: S105 - a file name  # nosec B105
ENCRYPTION_KEYS_FILE = "encryption_keys"
MIN_SECRET_KEY_LENGTH = 32
WEAK_SECRET_KEYS = frozenset({"changeme", "change-me", "secret", "secret_key", "dev", "development", "test"})


class Environment(StrEnum):
    development = "development"
    production = "production"
    test = "test"


class ConfigurationError(RuntimeError):
    """The settings cannot run the service; the message says what to change."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: Environment = Field(
        default=Environment.development,
        description="`development`, `production` (strict SECRET_KEY, JSON logs) or `test`.",
    )
    host: str = Field(default="127.0.0.1", description="Address the API listens on (0.0.0.0 in the image).")
    port: int = Field(default=8000, ge=1, le=65535, description="Port the API listens on.")
    data_dir: Path = Field(
        default=Path("data"),
        description="SQLite file, export files, the embedded broker, beat's schedule; shared by API and workers.",
    )
    database_url: str | None = Field(default=None, description="SQLAlchemy async URL; unset = SQLite file in DATA_DIR.")
    redis_url: str | None = Field(default=None, description="Unset = embedded mode (no Redis).")
    secret_key: str | None = Field(
        default=None,
        repr=False,
        description="Signs tokens; required in production (32+ random characters). Unset elsewhere = kept in DATA_DIR.",
    )
    encryption_keys: str | None = Field(
        default=None,
        repr=False,
        description="Key ring for data encrypted at rest, `id:base64key,...` (the first encrypts); "
        "`annotation-platform keys generate` makes one. Required in production; unset elsewhere = kept in DATA_DIR.",
    )

    access_token_lifetime_seconds: int = Field(default=24 * 3600, ge=60, description="How long a login lasts.")
    session_touch_interval_seconds: int = Field(
        default=60, ge=0, description="How often a session's last-seen time is written."
    )
    password_min_length: int = Field(default=10, ge=8, le=128, description="Shortest accepted password.")
    sqlite_busy_timeout_ms: int = Field(default=30_000, ge=0, description="SQLite waits this long for a lock.")
    database_pool_size: int = Field(
        default=10, ge=1, description="Connections per process (PostgreSQL); see Scaling in docs/deployment.md."
    )
    database_ping_idle_seconds: float = Field(
        default=10,
        ge=0,
        description=(
            "A pooled PostgreSQL connection idle longer than this is pinged before use, and replaced if dead; "
            "0 pings on every use (a round trip a request)."
        ),
    )
    database_echo: bool = Field(default=False, description="Log every SQL statement (debugging only).")
    max_request_body_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024, description="Largest request body outside imports (413 beyond)."
    )
    public_base_url: str | None = Field(
        default=None, description="Absolute base URL used in Link headers when behind a proxy."
    )
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR.")
    ip_allowlist: str = Field(
        default="", description="Comma-separated CIDRs; when set, other client addresses get 403 (health excepted)."
    )

    cors_origins: str = Field(
        default="", description="Comma-separated origins browsers may call the API from; empty = none (no CORS)."
    )
    allowed_hosts: str = Field(
        default="", description="Comma-separated Host names the service answers (`*.example.org` allowed); empty = any."
    )

    # Rate limits (`limits` syntax: "600/minute", "10 per 5 minutes"), counted in Redis when REDIS_URL is set.
    rate_limit_enabled: bool = Field(default=True, description="Rate limits on or off.")
    rate_limit_default: str = Field(default="600/minute", description="Per API key, else per user.")
    rate_limit_auth: str = Field(default="10/minute", description="Login, registration, password reset: per address.")
    rate_limit_anonymous: str = Field(
        default="60/minute", description="Requests to authenticated routes without valid credentials: per address."
    )
    login_lockout_attempts: int = Field(default=5, ge=0, description="Failed logins that lock an account; 0 = never.")
    login_lockout_seconds: int = Field(default=900, ge=1, description="How long a lockout lasts.")
    denied_burst_threshold: int = Field(
        default=20, ge=0, description="403/404 answers to one user in the window that raise a security event; 0 = off."
    )
    denied_burst_window_seconds: int = Field(default=60, ge=1, description="The window of DENIED_BURST_THRESHOLD.")
    # The read cache (core/cache.py) and response compression.
    cache_enabled: bool = Field(default=True, description="Cache hot reads (in Redis when REDIS_URL is set).")
    cache_ttl_seconds: int = Field(
        default=300, ge=1, description="Longest life of a cache entry; writes retire entries at once anyway."
    )
    cache_local_max_entries: int = Field(
        default=10_000, ge=1, description="Size of the in-process LRU used when REDIS_URL is unset."
    )
    gzip_min_bytes: int = Field(
        default=1024, ge=0, description="Responses at least this large are gzipped for clients that accept it."
    )
    trusted_proxies: str = Field(
        default="",
        validation_alias=AliasChoices("trusted_proxies", "forwarded_allow_ips"),
        description="Comma-separated addresses or CIDRs of the reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed; empty = none. FORWARDED_ALLOW_IPS is read as an older name of it.",
    )

    # Mail (password reset, email verification), sent by the worker: SMTP when SMTP_HOST is set, else `.eml`
    # files in DATA_DIR/outbox.
    smtp_host: str | None = Field(default=None, description="SMTP server; unset = mail goes to DATA_DIR/outbox.")
    smtp_port: int = Field(default=587, ge=1, le=65535, description="SMTP port.")
    smtp_username: str | None = Field(default=None, description="SMTP login, when the server wants one.")
    smtp_password: str | None = Field(default=None, repr=False, description="SMTP password.")
    smtp_from: str = Field(default="annotation-platform@localhost", description="Sender address of the mail.")
    smtp_tls: bool = Field(default=False, description="STARTTLS after connecting.")
    password_reset_token_lifetime_seconds: int = Field(default=3600, ge=60, description="How long a reset token works.")
    verification_token_lifetime_seconds: int = Field(
        default=2 * 24 * 3600, ge=60, description="How long an email verification token works."
    )

    # Login through an OpenID Connect provider (`/auth/oauth/{OIDC_PROVIDER_NAME}/...`); off while OIDC_ISSUER is unset.
    oidc_issuer: str | None = Field(
        default=None, description="Issuer URL; discovery at /.well-known/openid-configuration."
    )
    oidc_client_id: str | None = Field(default=None, description="This service's client id at the provider.")
    oidc_client_secret: str | None = Field(default=None, repr=False, description="The client's secret.")
    oidc_provider_name: str = Field(
        default="oidc", pattern=r"^[a-z][a-z0-9_-]{0,31}$", description="The name in /api/v1/auth/oauth/{name}/."
    )
    oidc_scopes: str = Field(default="openid email profile", description="Scopes asked of the provider.")
    oidc_associate_by_email: bool = Field(
        default=False, description="Log a provider user into the existing account with the same (verified) email."
    )

    # Alerts on security events (lockouts, API keys, role changes, account administration), sent by the worker.
    security_alert_emails: bool = Field(default=False, description="Mail every active superuser about them.")
    security_alert_webhook_url: str | None = Field(
        default=None, description="POST each as JSON here, signed with SECRET_KEY (X-Signature-SHA256)."
    )

    # Webhooks of projects (docs/webhooks.md), sent by the worker.
    webhook_allow_private_targets: bool = Field(
        default=False,
        description="Allow webhook URLs that resolve to private, loopback, link-local or reserved addresses (SSRF).",
    )
    webhook_allow_http: bool | None = Field(
        default=None, description="Allow plain-http webhook URLs; unset = yes, except in production (https only)."
    )
    webhook_timeout_seconds: float = Field(
        default=10, gt=0, le=30, description="A webhook call (connect, send, answer) gets this long."
    )
    webhook_max_attempts: int = Field(
        default=8, ge=1, le=30, description="Attempts per delivery before it is given up (status `failed`)."
    )
    webhook_retry_base_seconds: float = Field(
        default=10, gt=0, description="Wait before the first retry; each further one waits 4 times longer."
    )
    webhook_retry_max_seconds: float = Field(default=6 * 3600, gt=0, description="Longest wait between retries.")
    webhook_disable_after_failures: int = Field(
        default=20, ge=1, description="Consecutive failed calls that disable a webhook (its creator is mailed)."
    )
    webhook_secret_grace_seconds: int = Field(
        default=24 * 3600,
        ge=0,
        le=7 * 24 * 3600,
        description="After a secret rotation, calls are signed with the old secret too for this long (by default).",
    )
    webhook_sweep_interval_seconds: float = Field(
        default=5, gt=0, description="How often beat looks for webhook deliveries due for a retry."
    )

    # Background work (Celery). Without REDIS_URL the broker is a folder in DATA_DIR (kombu's filesystem transport).
    queue_name: str = Field(default="annotation-platform", description="The Celery queue the API sends work to.")
    broker_key_prefix: str = Field(default="", description="Prefix of the broker's Redis keys (several apps, one db).")
    max_upload_bytes: int = Field(default=1024**3, ge=1024, description="Largest accepted import file (413 beyond).")
    import_batch_size: int = Field(default=2000, ge=1, description="Rows an import writes per statement.")
    job_heartbeat_timeout_seconds: int = Field(
        default=300, ge=1, description="A running job whose worker was silent this long is failed by the reaper."
    )
    job_resend_after_seconds: int = Field(
        default=300,
        ge=1,
        description="A job still queued this long after its task was sent is sent again by the reaper "
        "(the message was lost, e.g. the broker was down); a duplicate is harmless.",
    )
    reaper_interval_seconds: float = Field(default=30, gt=0, description="How often beat runs the reaper.")
    health_check_workers: bool | None = Field(
        default=None, description="Ping the workers in /health/ready; unset = yes, except when ENVIRONMENT=test."
    )
    health_worker_timeout_seconds: float = Field(
        default=1.0, gt=0, description="How long /health/ready waits for a worker's ping answer."
    )

    # Exports (`POST /projects/{id}/exports`): files in DATA_DIR/exports, removed by beat after the retention.
    export_retention_hours: float = Field(default=72, gt=0, description="Export files are deleted after this long.")
    export_batch_size: int = Field(default=2000, ge=1, description="Items an export reads per page.")
    export_expire_interval_seconds: float = Field(
        default=3600, gt=0, description="How often beat expires exports and old uploads."
    )
    upload_retention_hours: float = Field(
        default=168,
        gt=0,
        description="Uploads of failed or cancelled imports are kept this long for a retry (succeeded: deleted).",
    )

    # Backups (`annotation-platform backup ...`, `/api/v1/admin/backups`).
    backup_dir: Path | None = Field(default=None, description="Where backup files go; unset = DATA_DIR/backups.")
    backup_retention_count: int = Field(default=7, ge=1, description="Backups kept; older ones are deleted.")
    backup_schedule_hours: float = Field(default=24, ge=0, description="Beat takes a backup this often; 0 = never.")
    agreement_inline_max_labels: int = Field(
        default=20_000,
        ge=0,
        description="Agreement over at most this many labels is computed in the request; beyond, by a worker job.",
    )

    # Production server (`annotation-platform serve --prod`, deploy/gunicorn.conf.py) and observability.
    web_concurrency: int | None = Field(
        default=None, ge=1, description="API processes under `serve --prod`; unset = one per CPU, at least 2."
    )
    graceful_timeout_seconds: int = Field(
        default=30, ge=1, description="On SIGTERM, in-flight requests get this long to finish before workers die."
    )
    worker_timeout_seconds: int = Field(
        default=60, ge=1, description="A silent (hung) API worker process is restarted after this long."
    )
    keepalive_seconds: int = Field(default=5, ge=1, description="Idle keep-alive connections are closed after this.")
    log_format: Literal["json", "text"] | None = Field(
        default=None, description="Log line format; unset = json in production, text otherwise."
    )
    metrics_enabled: bool = Field(default=True, description="Serve Prometheus metrics on GET /metrics.")
    worker_metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="A Celery worker serves its Prometheus metrics on this port."
    )
    sentry_dsn: str | None = Field(default=None, repr=False, description="Send errors to Sentry; unset = off.")

    @model_validator(mode="after")
    def _production_needs_a_strong_key(self) -> Settings:
        if self.environment is Environment.production:
            key = self.secret_key
            if not key:
                raise ConfigurationError(
                    "SECRET_KEY is not set. In production set it to a random string of at least "
                    f"{MIN_SECRET_KEY_LENGTH} characters, e.g. the output of: "
                    "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
                )
            if len(key) < MIN_SECRET_KEY_LENGTH or key.lower() in WEAK_SECRET_KEYS:
                raise ConfigurationError(
                    f"SECRET_KEY is too weak for production: use at least {MIN_SECRET_KEY_LENGTH} "
                    "random characters, e.g. python -c 'import secrets; print(secrets.token_urlsafe(48))'"
                )
        return self

    @model_validator(mode="after")
    def _key_ring_parses(self) -> Settings:
        """Checked here, not in a field validator, so that a bad value never appears in the error message."""
        if self.encryption_keys:
            try:
                KeyRing.parse(self.encryption_keys)
            except KeyRingError as error:
                raise ConfigurationError(str(error)) from None
        elif self.environment is Environment.production:
            raise ConfigurationError(
                "ENCRYPTION_KEYS is not set. In production set it to the output of "
                "`annotation-platform keys generate` and keep it as safe as the database backups."
            )
        return self

    @field_validator("trusted_proxies", "ip_allowlist")
    @classmethod
    def _networks_parse(cls, value: str) -> str:
        parse_networks(value)
        return value

    @field_validator("rate_limit_default", "rate_limit_auth", "rate_limit_anonymous")
    @classmethod
    def _limit_parses(cls, value: str) -> str:
        parse_limit(value)
        return value

    @property
    def trusted_proxy_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        return parse_networks(self.trusted_proxies)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return normalise_database_url(self.database_url)
        return f"sqlite+aiosqlite:///{(self.data_dir / 'annotation-platform.db').resolve()}"

    @property
    def checks_workers(self) -> bool:
        if self.health_check_workers is not None:
            return self.health_check_workers
        return self.environment is not Environment.test

    @property
    def webhooks_allow_http(self) -> bool:
        if self.webhook_allow_http is not None:
            return self.webhook_allow_http
        return self.environment is not Environment.production

    @property
    def logs_as_json(self) -> bool:
        if self.log_format is not None:
            return self.log_format == "json"
        return self.environment is Environment.production

    @property
    def resolved_backup_dir(self) -> Path:
        return (self.backup_dir or self.data_dir / "backups").resolve()

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    def resolved_secret_key(self) -> str:
        """The configured key, or (outside production) one generated once and kept in DATA_DIR."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / SECRET_KEY_FILE
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        path.touch(mode=0o600)
        path.write_text(key)
        return key

    def resolved_key_ring(self) -> KeyRing:
        """`ENCRYPTION_KEYS`, or (outside production) a key generated once and kept in DATA_DIR."""
        if self.encryption_keys:
            return KeyRing.parse(self.encryption_keys)
        path = self.data_dir / ENCRYPTION_KEYS_FILE
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(generate_key_entry("local"))
        return KeyRing.parse(path.read_text().strip())


def parse_networks(text: str) -> tuple[IPv4Network | IPv6Network, ...]:
    """`10.0.0.0/8, 192.168.1.7` -> networks; a bare address is a network of one. Raises ValueError when invalid."""
    return tuple(ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip())


def normalise_database_url(url: str) -> str:
    """Accept the URLs people paste (`postgres://`, `postgresql://`) and pick the async drivers."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://", "postgresql+psycopg://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith("sqlite://") and not url.startswith("sqlite+aiosqlite://"):
        return "sqlite+aiosqlite://" + url[len("sqlite://") :]
    return url


@lru_cache
def get_settings() -> Settings:
    return Settings()


def settings_from(request: Request) -> Settings:
    """The settings the running app was created with (tests create apps with their own)."""
    settings: Settings = request.app.state.settings
    return settings


async def settings_of(request: Request) -> Settings:
    """`settings_from` as a dependency. Dependencies are coroutines, even those that do not wait: FastAPI runs
    plain functions in a worker thread, a hop per request."""
    return settings_from(request)


SettingsDep = Annotated[Settings, Depends(settings_of)]
