"""Configuration: the SPEC.md variables, production refusals, URL handling, dev helpers."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core.config import ConfigurationError, Settings, normalize_url
from main import create_app
from tests.conftest import make_settings
from tests.keys import SECRET, bearer, mint

ROOT = Path(__file__).resolve().parent.parent


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_production_refuses_to_start_without_auth() -> None:
    with pytest.raises(ConfigurationError) as refused:
        create_app(settings(environment="production", database_url="sqlite://"))
    message = str(refused.value)
    assert "BETTER_AUTH_URL" in message
    assert "BETTER_AUTH_SECRET" in message


@pytest.mark.parametrize(
    ("secret", "complaint"),
    [
        ("too-short", "use at least 32"),
        ("change-me-to-a-random-string-of-at-least-32-bytes", "published example value"),
    ],
)
def test_production_refuses_a_weak_secret(secret: str, complaint: str) -> None:
    with pytest.raises(ConfigurationError, match=complaint):
        settings(environment="production", better_auth_secret=secret).check_startup()


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"better_auth_url": "http://auth.example.com"}, "plain http"),
        (
            {
                "better_auth_jwks_url": "http://keys.example.com/jwks",
                "jwt_issuer": "i",
                "jwt_audience": "a",
            },
            "plain http",
        ),
        ({"better_auth_secret": " " * 40}, "too repetitive"),
        ({"better_auth_secret": "ab" * 20}, "too repetitive"),
        ({"better_auth_url": "https://auth.example.com", "cors_origins": "*"}, "explicit origins"),
        # Keys with nothing to pin: any issuer and audience would pass.
        ({"better_auth_jwks_url": "https://keys.example.com/jwks"}, "without an issuer"),
        (
            {"better_auth_jwks_url": "https://keys.example.com/jwks", "jwt_issuer": "i"},
            "without an issuer",
        ),
    ],
)
def test_production_refuses_configurations_that_can_be_tricked(
    values: dict[str, str], complaint: str
) -> None:
    with pytest.raises(ConfigurationError, match=complaint):
        settings(environment="production", **values).check_startup()


@pytest.mark.parametrize(
    "values",
    [
        {"better_auth_url": "http://127.0.0.1:3000"},
        {"better_auth_url": "http://localhost:3000"},
        {"better_auth_url": "http://auth.internal:3000", "jwks_allow_http": True},
        {"better_auth_url": "https://auth.example.com"},
    ],
)
def test_https_or_loopback_or_explicitly_trusted_jwks_is_accepted(
    values: dict[str, object],
) -> None:
    assert settings(environment="production", **values).check_startup() == []


def test_a_published_example_secret_is_refused_even_in_development() -> None:
    example = "change-me-to-a-random-string-of-at-least-32-bytes"
    with pytest.raises(ConfigurationError, match="published example value"):
        settings(environment="development", better_auth_secret=example).check_startup()


def test_uvicorn_entry_point_reports_bad_configuration_in_one_line(tmp_path: Path) -> None:
    env = {
        k: v for k, v in os.environ.items() if k not in ("BETTER_AUTH_SECRET", "BETTER_AUTH_URL")
    }
    env |= {"ENVIRONMENT": "production", "DATABASE_URL": "sqlite://", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", "import main; main.app"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,  # away from a developer's .env (`make run` writes one)
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().startswith("Task API configuration error: refusing to start")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("postgresql//user@host/db", "is not a database URL"),
        ("ep-cool-name.eu-central-1.aws.neon.tech/neondb", "is not a database URL"),
        ("mysql://user@host/db", "must be a PostgreSQL"),
    ],
)
def test_database_url_that_cannot_work_is_refused_at_start_up_in_one_line(
    tmp_path: Path, url: str, complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        settings(database_url=url)
    env = {**os.environ, "DATABASE_URL": url, "BETTER_AUTH_SECRET": SECRET}
    result = subprocess.run(
        [sys.executable, "-c", "import main; main.app"],
        capture_output=True,
        text=True,
        env={**env, "PYTHONPATH": str(ROOT)},
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith(f"Task API configuration error: DATABASE_URL: {complaint}")
    assert url not in line  # a URL can hold a password: it is never repeated back


def test_development_start_with_an_unreachable_database_says_so_in_one_line(
    tmp_path: Path,
) -> None:
    # `make run` against a DATABASE_URL that does not answer (PostgreSQL not started, a typo in
    # the port): which URL, why, and what to set, in one line, without the password and without
    # a traceback through uvicorn.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens here once the socket is closed
    url = f"postgresql://dev:hunter2hunter2@127.0.0.1:{port}/tasks"
    env = {
        **os.environ,
        "ENVIRONMENT": "development",
        "DATABASE_URL": url,
        "BETTER_AUTH_SECRET": SECRET,
        "DB_CONNECT_TIMEOUT": "2",
    }
    result = subprocess.run(
        [sys.executable, "-m", "uvicorn", "main:app", "--app-dir", str(ROOT), "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,  # no developer .env here
        check=False,
        timeout=60,
    )
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith(
        f"Task API: cannot reach the database at postgresql://dev:***@127.0.0.1:{port}/tasks ("
    )
    assert "Connection refused" in line
    assert line.endswith(
        "Start it, or set DATABASE_URL to one that answers "
        "(unset, the service uses a local SQLite file, ./tasks.db)"
    )
    assert "hunter2" not in result.stderr


def test_production_is_the_default_environment() -> None:
    assert settings().environment == "production"


def test_development_starts_with_a_weak_secret_and_says_why() -> None:
    problems = settings(environment="development", better_auth_secret="abcdefgh").check_startup()
    assert problems == [
        "BETTER_AUTH_SECRET is 8 bytes; use at least 32 "
        "(e.g. the output of `openssl rand -base64 32`)"
    ]


def test_jwks_mode_derives_url_issuer_and_audience_from_better_auth_url() -> None:
    config = settings(better_auth_url="https://app.example.com/")
    assert config.jwks_url == "https://app.example.com/api/auth/jwks"
    assert config.jwks_issuer == "https://app.example.com"
    assert config.jwks_audience == "https://app.example.com"
    explicit = settings(
        better_auth_url="https://app.example.com",
        better_auth_jwks_url="https://keys.example.com/jwks",
        jwt_issuer="iss",
        jwt_audience="aud",
    )
    assert (explicit.jwks_url, explicit.jwks_issuer, explicit.jwks_audience) == (
        "https://keys.example.com/jwks",
        "iss",
        "aud",
    )


@pytest.mark.parametrize(
    ("base_url", "origin"),
    [
        ("https://App.Example.COM/", "https://app.example.com"),
        ("https://app.example.com:443/auth", "https://app.example.com"),
        ("http://localhost:80", "http://localhost"),
        ("http://user:password@localhost:3000", "http://localhost:3000"),
        ("HTTPS://app.example.com:8443", "https://app.example.com:8443"),
        ("http://[::1]:3000/", "http://[::1]:3000"),
    ],
)
def test_pinned_issuer_is_the_origin_as_a_browser_writes_it_us2_1(
    base_url: str, origin: str
) -> None:
    # Better Auth writes iss/aud from `new URL(baseURL).origin`: host lower-cased, no default
    # port, no credentials. Pinning the URL as typed would refuse every token.
    config = settings(better_auth_url=base_url)
    assert (config.jwks_issuer, config.jwks_audience) == (origin, origin)


def test_better_auth_url_with_a_port_that_is_not_a_number_is_refused() -> None:
    with pytest.raises(ValueError, match="Port could not be cast"):
        settings(better_auth_url="https://app.example.com:http")


def test_better_auth_url_must_be_absolute_http() -> None:
    with pytest.raises(ValueError, match="absolute http"):
        settings(better_auth_url="app.example.com")


def test_cors_origins_are_comma_separated_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example/ ,")
    assert settings().cors_origins == ["https://a.example", "https://b.example"]
    monkeypatch.delenv("CORS_ORIGINS")
    assert settings().cors_origins == ["http://localhost:3000"]


@pytest.mark.parametrize(
    ("raw", "driver"),
    [
        ("postgres://u:p@ep-x-pooler.neon.tech/db?sslmode=require", "postgresql+psycopg"),
        ("postgresql://u:p@host/db", "postgresql+psycopg"),
        ("postgresql+psycopg2://u:p@host/db", "postgresql+psycopg"),
        ("sqlite:///./tasks.db", "sqlite"),
    ],
)
def test_database_urls_are_accepted_as_hosts_print_them(raw: str, driver: str) -> None:
    assert normalize_url(raw).drivername == driver


def test_neon_url_keeps_ssl_and_channel_binding() -> None:
    url = normalize_url(
        "postgresql://u:p@ep-x-pooler.eu-central-1.aws.neon.tech/neondb"
        "?sslmode=require&channel_binding=require"
    )
    assert url.query == {"sslmode": "require", "channel_binding": "require"}
    assert url.host == "ep-x-pooler.eu-central-1.aws.neon.tech"


def dev_token(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "dev_token.py"), *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "BETTER_AUTH_SECRET": SECRET, "ENVIRONMENT": "development", **env},
        cwd=tmp_path,  # no .env there: the secret comes from the environment
    )


@pytest.mark.parametrize(
    ("args", "env", "user"),
    [
        (["carol"], {}, "carol"),
        # `make token USER_ID=...` passes the id through the environment, never a shell.
        ([], {"USER_ID": "o'brien; echo injected"}, "o'brien; echo injected"),
        ([], {"USER_ID": ""}, "dev-user"),
    ],
    ids=["argument", "make-variable", "default"],
)
def test_dev_token_helper_mints_a_token_the_api_accepts_fr002(
    tmp_path: Path, args: list[str], env: dict[str, str], user: str
) -> None:
    minted = dev_token(tmp_path, *args, **env)
    assert minted.returncode == 0, minted.stderr
    with TestClient(create_app(make_settings("sqlite://", environment="development"))) as client:
        created = client.post(
            "/api/tasks", json={"title": "minted"}, headers=bearer(minted.stdout.strip())
        )
    assert created.status_code == 201
    assert created.json()["user_id"] == user


@pytest.mark.parametrize("user", [" padded", "a" * 256, "zero\u200bwidth"])
def test_dev_token_helper_refuses_an_id_the_api_would_refuse(tmp_path: Path, user: str) -> None:
    minted = dev_token(tmp_path, user)
    assert minted.returncode == 2
    assert minted.stdout == ""
    assert "is not a user id the API accepts" in minted.stderr


def test_dev_env_helper_creates_env_with_a_fresh_secret_once(tmp_path: Path) -> None:
    for name in ("scripts/dev_env.py", ".env.example"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text((ROOT / name).read_text())
    run = [sys.executable, str(tmp_path / "scripts" / "dev_env.py")]
    subprocess.run(run, check=True, capture_output=True)
    first = (tmp_path / ".env").read_text()
    assert "change-me" not in first
    assert "ENVIRONMENT=development" in first
    subprocess.run(run, check=True, capture_output=True)
    assert (tmp_path / ".env").read_text() == first
    secret = next(line for line in first.splitlines() if line.startswith("BETTER_AUTH_SECRET="))
    generated = settings(environment="production", better_auth_secret=secret.split("=", 1)[1])
    assert generated.check_startup() == []


def test_layout_and_uvicorn_entry_point_fr001(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("main.py", "db.py", "models.py", "auth.py", "schemas.py", "core/config.py"):
        assert (ROOT / name).is_file(), name
    assert (ROOT / "routes" / "tasks.py").is_file()
    import main
    from core.config import get_settings

    # `uvicorn main:app` reads the environment when it first asks for `app`, not at import.
    monkeypatch.chdir(tmp_path)  # no .env here: only what this test sets
    monkeypatch.setenv("ENVIRONMENT", "development")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'entry.db'}")
    monkeypatch.setenv("BETTER_AUTH_SECRET", SECRET)
    get_settings.cache_clear()
    main._default_app.cache_clear()
    try:
        with TestClient(main.app) as client:
            assert client.get("/health").json() == {"status": "ok"}
    finally:
        get_settings.cache_clear()
        main._default_app.cache_clear()


def test_database_url_from_the_environment_selects_postgresql_fr004(
    monkeypatch: pytest.MonkeyPatch, pg_url: str
) -> None:
    from sqlalchemy import create_engine, select

    from models import tasks

    monkeypatch.setenv("DATABASE_URL", pg_url)
    monkeypatch.setenv("BETTER_AUTH_SECRET", SECRET)
    with TestClient(create_app(Settings(_env_file=None))) as client:
        created = client.post("/api/tasks", json={"title": "in postgres"}, headers=bearer(mint()))
    assert created.status_code == 201
    engine = create_engine(pg_url)
    with engine.connect() as conn:
        titles = conn.execute(select(tasks.c.title).where(tasks.c.id == created.json()["id"]))
        assert titles.scalar_one() == "in postgres"
    engine.dispose()
