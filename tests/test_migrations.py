"""Schema by Alembic: fresh databases reach head, models and migrations agree (FR-005)."""

import multiprocessing
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import BigInteger, create_engine, inspect, select, text
from sqlmodel import SQLModel

from core.config import normalize_url
from db import alembic_config, make_engine, migrate
from main import create_app
from models import tasks
from tests.conftest import make_settings
from tests.keys import bearer, mint

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def empty_pg_url(postgres_server: str) -> Iterator[str]:
    name = f"taskapi_migrate_{uuid.uuid4().hex[:10]}"
    admin = create_engine(normalize_url(postgres_server), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        url = normalize_url(postgres_server).set(database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(params=["postgresql", "sqlite"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        url: str = request.getfixturevalue("empty_pg_url")
        return url
    return f"sqlite:///{tmp_path / 'fresh.db'}"


def test_migrations_create_exactly_the_model_schema_fr005(empty_url: str) -> None:
    engine = create_engine(normalize_url(empty_url))
    migrate(engine)
    with engine.connect() as conn:
        # The search index (migration 0003) exists only where pg_trgm does: it is PostgreSQL-
        # specific, optional, and not part of the SQLModel metadata.
        context = MigrationContext.configure(
            conn, opts={"include_name": lambda name, kind, _parent: name != "ix_tasks_search"}
        )
        differences = compare_metadata(context, SQLModel.metadata)
        columns = {c["name"]: c for c in inspect(conn).get_columns("tasks")}
        indexes = {i["name"]: i["column_names"] for i in inspect(conn).get_indexes("tasks")}
    engine.dispose()
    assert differences == []
    assert columns["completed"]["nullable"] is False
    assert columns["description"]["nullable"] is True
    # FR-005's "user_id indexed", together with each list order (newest, recently updated).
    assert indexes["ix_tasks_user_created"] == ["user_id", "created_at", "id"]
    assert indexes["ix_tasks_user_updated"] == ["user_id", "updated_at", "id"]
    assert indexes["ix_tasks_user_title"] == ["user_id", "title", "id"]  # every sort (issue 15)
    if engine.dialect.name == "postgresql":
        assert isinstance(columns["id"]["type"], BigInteger)  # ids never run out at 2**31


def test_rows_written_by_other_tools_get_defaults_fr005_fr010(empty_url: str) -> None:
    engine = create_engine(normalize_url(empty_url))
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO tasks (user_id, title) VALUES ('u', 'by hand')"))
        row = conn.execute(select(tasks.c.completed, tasks.c.created_at, tasks.c.updated_at)).one()
    engine.dispose()
    assert row.completed is False
    assert row.created_at.tzinfo is not None
    assert row.updated_at == row.created_at


def test_migrations_downgrade_and_upgrade_again(empty_url: str) -> None:
    engine = create_engine(normalize_url(empty_url))
    migrate(engine)
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    assert "tasks" not in inspect(engine).get_table_names()
    migrate(engine)
    migrate(engine)  # idempotent
    assert "tasks" in inspect(engine).get_table_names()
    engine.dispose()


def test_migrate_command_gives_up_on_a_silent_server_within_the_connect_timeout(
    tmp_path: Path,
) -> None:
    # A host that accepts the connection and never answers (a firewall, a paused Neon
    # endpoint behind a proxy): `make migrate` must fail, not hang a deploy forever.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if k != "BETTER_AUTH_SECRET"}
        env |= {
            "DATABASE_URL": f"postgresql://u@127.0.0.1:{port}/db",
            "DB_CONNECT_TIMEOUT": "1",
        }
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), "upgrade", "head"],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,  # away from a developer's .env
            timeout=60,
            check=False,
        )
    assert result.returncode != 0
    assert "timeout expired" in result.stderr
    assert time.monotonic() - started < 20


def _migrate_after(barrier: Any, url: str) -> str:
    """One start-up's migration, in its own process, released together with the others."""
    engine = make_engine(make_settings(url, environment="development"))
    barrier.wait()
    try:
        migrate(engine)
    except Exception as exc:  # reported to the test, which shows it
        return f"{type(exc).__name__}: {exc}"
    finally:
        engine.dispose()
    return "ok"


def test_start_ups_that_migrate_at_once_take_turns(empty_url: str) -> None:
    # `uvicorn --workers 4` in development, or replicas starting together: every process
    # migrates a fresh database at the same moment. One creates the schema, the others wait
    # and find it done (PostgreSQL: an advisory lock; SQLite: its write lock).
    processes = 4
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(processes) as pool:
        barrier = manager.Barrier(processes)
        outcomes = pool.starmap(_migrate_after, [(barrier, empty_url)] * processes)
    assert outcomes == ["ok"] * processes
    engine = create_engine(normalize_url(empty_url))
    assert "tasks" in inspect(engine).get_table_names()
    engine.dispose()


def test_a_migration_waiting_for_another_ones_lock_is_not_cut_by_the_statement_timeout(
    empty_pg_url: str,
) -> None:
    # Two `make migrate` runs (two deploy jobs, replicas in development) at once: the second
    # waits on the advisory lock for as long as the first one's migration takes, which may
    # rightly exceed DB_STATEMENT_TIMEOUT. The wait must not be cancelled by it.
    # migrations/env.py runs only inside alembic; its lock id is read from the file.
    found = re.search(
        r"^MIGRATION_LOCK_ID = ([\d_]+)", (ROOT / "migrations" / "env.py").read_text(), re.M
    )
    assert found is not None
    lock_id = int(found.group(1))
    holder = create_engine(normalize_url(empty_pg_url))
    engine = make_engine(make_settings(empty_pg_url, db_statement_timeout=0.2))
    try:
        with holder.connect() as other:
            other.execute(text("SELECT pg_advisory_lock(:id)"), {"id": lock_id})
            release = threading.Timer(
                1.5,
                lambda: other.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": lock_id}),
            )
            release.start()
            try:
                migrate(engine)  # waits well past the 0.2 s statement timeout, then migrates
            finally:
                release.join()
            other.commit()
        assert "tasks" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
        holder.dispose()


def test_development_start_up_migrates_a_fresh_database(empty_url: str) -> None:
    settings = make_settings(empty_url, environment="development")
    with TestClient(create_app(settings)) as client:
        created = client.post("/api/tasks", json={"title": "first"}, headers=bearer(mint()))
    assert created.status_code == 201


def test_production_start_up_does_not_migrate(empty_url: str) -> None:
    with TestClient(create_app(make_settings(empty_url))):
        pass
    engine = create_engine(normalize_url(empty_url))
    assert "tasks" not in inspect(engine).get_table_names()
    engine.dispose()


def test_task_routes_are_503_until_the_schema_is_migrated(empty_url: str) -> None:
    # Production does not migrate at start-up; a release that skipped `make migrate` must say
    # so (503, retry later), not fail with a 500.
    with TestClient(create_app(make_settings(empty_url))) as client:
        headers = bearer(mint())
        responses = [
            client.get("/api/tasks", headers=headers),
            client.post("/api/tasks", json={"title": "lost?"}, headers=headers),
            client.patch("/api/tasks/1/complete", headers=headers),
        ]
    for response in responses:
        assert response.status_code == 503, response.text
        assert response.json() == {"detail": "Database schema is not migrated: run `make migrate`"}
        assert response.headers["retry-after"] == "2"
