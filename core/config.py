"""Settings from the environment (and an optional ``.env``), validated at start-up."""

from functools import lru_cache
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_SQLITE_URL = "sqlite:///./tasks.db"
MIN_SECRET_BYTES = 32
MIN_SECRET_DISTINCT = 8
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

# Placeholder secrets from our .env.example and from common tutorials. Production refuses them:
# a secret that is printed in documentation protects nothing.
KNOWN_EXAMPLE_SECRETS = frozenset(
    {
        "change-me-to-a-random-string-of-at-least-32-bytes",
        "your-secret-key",
        "your-better-auth-secret",
        "better-auth-secret-12345678901234567890",
        "secret",
        "changeme",
        "development-secret-change-me",
    }
)


def normalize_url(raw: str) -> URL:
    """Accept URLs as Neon and Heroku-style hosts print them (``postgres://``, ``postgresql://``)."""
    if raw.startswith("postgres://"):
        raw = "postgresql://" + raw.removeprefix("postgres://")
    url = make_url(raw)
    if url.get_backend_name() == "postgresql":
        # psycopg 3, whatever driver the URL names (postgresql+psycopg2:// from older docs).
        url = url.set(drivername="postgresql+psycopg")
    return url


class ConfigurationError(RuntimeError):
    """The service cannot start with this configuration; the message says what to set."""


DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str:
    """``https://Auth.example.com:443/base/`` -> ``https://auth.example.com``: its iss and aud.

    The origin as a browser (and Better Auth, through ``new URL(baseURL).origin``) writes it:
    scheme and host lower-cased, no credentials, no default port.
    """
    parts = urlsplit(url)
    scheme, host, port = parts.scheme.lower(), parts.hostname or "", parts.port
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port is not None and port != DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    return f"{scheme}://{host}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    environment: Literal["development", "production"] = "production"
    database_url: str = DEFAULT_SQLITE_URL

    better_auth_secret: SecretStr | None = None
    better_auth_url: str | None = None
    better_auth_jwks_url: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=300)
    # Keys fetched over plain http can be swapped in transit. Production needs https, unless
    # the key server is on this machine or this says the network path is trusted.
    jwks_allow_http: bool = False

    cors_origins: Annotated[list[str], NoDecode] = ["http://localhost:3000"]

    # Connections per process. Database work runs on exactly this many worker threads, so a
    # request never holds a thread while it waits for a connection (see db.Database).
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_max_overflow: int = Field(default=0, ge=0, le=200)
    db_pool_timeout: float = Field(default=10.0, gt=0, le=120)
    db_connect_timeout: int = Field(default=5, ge=1, le=60)
    # PostgreSQL cancels a statement running longer than this (0: never), e.g. one stuck behind
    # a lock: the request answers 503 instead of holding a connection indefinitely.
    db_statement_timeout: float = Field(default=10.0, ge=0, le=600)

    # Hostile connections (core/server.py, run by scripts/serve). A request head must arrive
    # whole within this many seconds of its first byte; a body must then average at least this
    # many bytes a second (0: no floor) after the same grace; one client address may hold at
    # most this many connections per process (0: no cap; a trusted proxy is never capped).
    request_head_timeout: float = Field(default=5.0, gt=0, le=300)
    request_body_min_rate: int = Field(default=1024, ge=0)
    max_connections_per_client: int = Field(default=1000, ge=0)

    # Fair use (issues 12 and 15). Tasks one user may store; X-Total-Count counts up to it.
    max_tasks_per_user: int = Field(default=10_000, ge=1, le=10_000_000)
    # Requests of one user served at once per process; more wait in a per-user queue of at most
    # per_user_queue requests for at most per_user_wait_seconds, then 429. Keep it under
    # DB_POOL_SIZE: a user never holds more connections than this.
    per_user_concurrency: int = Field(default=4, ge=1, le=1000)
    per_user_queue: int = Field(default=32, ge=0, le=100_000)
    per_user_wait_seconds: float = Field(default=5.0, gt=0, le=120)
    # Writes one user may make: "N/S" is N at once, then N per S seconds (a token bucket).
    write_rate_limit: str = Field(default="60/10", pattern=r"^\s*\d+\s*/\s*\d+(\.\d+)?\s*$")

    @property
    def write_rate(self) -> tuple[int, float]:
        writes, seconds = self.write_rate_limit.split("/")
        return int(writes), float(seconds)

    # On SIGTERM, /health/ready fails at once and the server keeps serving this long before it
    # stops accepting (core/shutdown.py): a load balancer's health check takes it out first.
    shutdown_delay_seconds: float = Field(default=0.0, ge=0, le=120)

    log_level: str = "INFO"

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()]
        return value

    @field_validator(
        "better_auth_url",
        "better_auth_jwks_url",
        "jwt_issuer",
        "jwt_audience",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("better_auth_secret", mode="before")
    @classmethod
    def _blank_secret_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value else value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        try:
            url = normalize_url(value)
        except ArgumentError:
            raise ValueError(
                "is not a database URL: expected e.g. postgresql://user:password@host/dbname "
                "or sqlite:///./tasks.db"
            ) from None
        if url.get_backend_name() not in ("postgresql", "sqlite"):
            raise ValueError(
                "must be a PostgreSQL (postgresql://...) or SQLite (sqlite:///...) URL"
            )
        return value

    @field_validator("better_auth_url", "better_auth_jwks_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
                raise ValueError("must be an absolute http(s) URL, e.g. https://app.example.com")
            origin_of(value)  # a port that is not a number raises here, at start-up
        return value

    @property
    def jwks_url(self) -> str | None:
        """Where Better Auth publishes its public keys; None disables the JWKS mode."""
        if self.better_auth_jwks_url:
            return self.better_auth_jwks_url
        if self.better_auth_url:
            return self.better_auth_url.rstrip("/") + "/api/auth/jwks"
        return None

    @property
    def jwks_issuer(self) -> str | None:
        """The issuer every JWKS-verified token must carry (pinned, never taken from the token)."""
        if self.jwt_issuer:
            return self.jwt_issuer
        return origin_of(self.better_auth_url) if self.better_auth_url else None

    @property
    def jwks_audience(self) -> str | None:
        if self.jwt_audience:
            return self.jwt_audience
        return origin_of(self.better_auth_url) if self.better_auth_url else None

    @property
    def secret_bytes(self) -> bytes | None:
        if self.better_auth_secret is None:
            return None
        return self.better_auth_secret.get_secret_value().encode("utf-8")

    def check_startup(self) -> list[str]:
        """Refuse a production configuration that cannot be safe; return warnings otherwise."""
        problems: list[str] = []
        secret = self.secret_bytes
        if self.jwks_url is None and secret is None:
            problems.append(
                "no authentication is configured: set BETTER_AUTH_URL (JWKS, recommended) "
                "and/or BETTER_AUTH_SECRET (HS256 shared secret)"
            )
        if self.better_auth_jwks_url and not (self.jwks_issuer and self.jwks_audience):
            problems.append(
                "BETTER_AUTH_JWKS_URL is set without an issuer and audience to pin: "
                "set BETTER_AUTH_URL, or JWT_ISSUER and JWT_AUDIENCE"
            )
        jwks = self.jwks_url
        if jwks and not self.jwks_allow_http:
            parts = urlsplit(jwks)
            if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
                problems.append(
                    f"the JWKS URL {jwks} is plain http, so its keys could be replaced in "
                    "transit: use https, or set JWKS_ALLOW_HTTP=true for a trusted private network"
                )
        if "*" in self.cors_origins:
            problems.append("CORS_ORIGINS must list explicit origins, not *")
        if secret is not None:
            if len(set(secret)) < MIN_SECRET_DISTINCT:
                problems.append(
                    "BETTER_AUTH_SECRET is too repetitive to be secret; generate one "
                    "(e.g. `openssl rand -base64 32`)"
                )
            if len(secret) < MIN_SECRET_BYTES:
                problems.append(
                    f"BETTER_AUTH_SECRET is {len(secret)} bytes; use at least {MIN_SECRET_BYTES} "
                    "(e.g. the output of `openssl rand -base64 32`)"
                )
        if secret is not None and secret.decode().strip().lower() in KNOWN_EXAMPLE_SECRETS:
            # Anyone can mint tokens with a published secret: not even a laptop runs with one.
            raise ConfigurationError(
                "BETTER_AUTH_SECRET is a published example value; generate your own "
                "(e.g. `openssl rand -base64 32`)"
            )
        if self.environment == "production" and problems:
            raise ConfigurationError(
                "refusing to start in production: " + "; ".join(problems) + ". "
                "Set ENVIRONMENT=development to run locally with a weak configuration."
            )
        return problems


@lru_cache
def get_settings() -> Settings:
    return Settings()
