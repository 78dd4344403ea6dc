"""Benchmark databases: created on the given server, migrated with the product's own Alembic
scripts, filled in one statement each (``generate_series``), dropped at the end.

Users are 32-character ids like Better Auth's (``bench000...0042``); the heavy user is
``benchheavy0...0``. Rows are written in time order across users (every user's first task,
then every user's second, ...), so one user's rows are spread over the table as they would be
in a real service, not packed together.
"""

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy import create_engine

from core.config import normalize_url
from db import migrate

HEAVY_USER = "benchheavy" + "0" * 22
HEAVY_TASKS = 10_000
TASKS_PER_USER = 100


def user_id(number: int) -> str:
    return f"bench{number:027d}"


def _dsn(url: str) -> str:
    return normalize_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def connect(url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(_dsn(url), autocommit=True) as connection:
        yield connection


def create_database(server_url: str, label: str) -> str:
    """A new, uniquely named, migrated database on the server; returns its URL."""
    name = f"taskapi_bench_{label}_{uuid.uuid4().hex[:10]}"
    with connect(server_url) as admin, admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"'.encode())
    url = normalize_url(server_url).set(database=name).render_as_string(hide_password=False)
    engine = create_engine(normalize_url(url))
    try:
        migrate(engine)
    finally:
        engine.dispose()
    return url


def drop_database(server_url: str, database_url: str) -> None:
    name = normalize_url(database_url).database
    assert name is not None
    assert name.startswith("taskapi_bench_")  # never anyone else's database
    with connect(server_url) as admin, admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


SEED = """
INSERT INTO tasks (user_id, title, description, completed, created_at, updated_at)
SELECT 'bench' || lpad(u::text, 27, '0'),
       'Task ' || t || ' of user ' || u,
       CASE WHEN t %% 3 = 0 THEN NULL ELSE 'Benchmark description of task ' || t END,
       t %% 4 = 0,
       at, at
FROM generate_series(1, %(per_user)s) AS t, generate_series(1, %(users)s) AS u,
     LATERAL (SELECT timestamptz '2026-01-01 00:00:00+00'
                     + t * interval '1 minute' + u * interval '1 microsecond') AS moment(at)
ORDER BY t, u
"""

SEED_HEAVY = """
INSERT INTO tasks (user_id, title, description, completed, created_at, updated_at)
SELECT %(user)s, 'Heavy task ' || t, NULL, t %% 2 = 0,
       timestamptz '2026-01-01 00:00:00+00' + t * interval '1 second',
       timestamptz '2026-01-01 00:00:00+00' + t * interval '1 second'
FROM generate_series(1, %(tasks)s) AS t
"""


def seed(database_url: str, users: int) -> float:
    """``users`` x 100 tasks plus the heavy user's 10,000; returns the seconds it took."""
    started = time.perf_counter()
    with connect(database_url) as connection, connection.cursor() as cursor:
        cursor.execute(SEED, {"per_user": TASKS_PER_USER, "users": users})
        cursor.execute(SEED_HEAVY, {"user": HEAVY_USER, "tasks": HEAVY_TASKS})
        cursor.execute("VACUUM ANALYZE tasks")
    return time.perf_counter() - started


def first_task_ids(database_url: str, users: int) -> list[int]:
    """One task id per user (users 1..``users``), for the toggle load."""
    with connect(database_url) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT min(id) FROM tasks WHERE user_id = ANY(%s) GROUP BY user_id ORDER BY user_id",
            ([user_id(n) for n in range(1, users + 1)],),
        )
        return [int(str(row[0])) for row in cursor.fetchall()]


def row_count(database_url: str) -> int:
    with connect(database_url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM tasks")
        (count,) = cursor.fetchone() or (0,)
        return int(str(count))


def explain(database_url: str, sql: str, params: dict[str, object], setup: str = "") -> str:
    """The plan of ``sql`` as run, after ``setup`` (``SET LOCAL``s) in the same transaction."""
    with connect(database_url) as connection, connection.transaction():
        cursor = connection.cursor()
        if setup:
            cursor.execute(setup.encode())
        cursor.execute(("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql).encode(), params)
        return "\n".join(str(row[0]) for row in cursor.fetchall())


def fetch_row(database_url: str, sql: str, params: dict[str, object]) -> tuple[object, ...]:
    with connect(database_url) as connection, connection.cursor() as cursor:
        cursor.execute(sql.encode(), params)
        row = cursor.fetchone()
        assert row is not None, sql
        return row


def task_ids(database_url: str, user: str) -> list[int]:
    with connect(database_url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT id FROM tasks WHERE user_id = %s ORDER BY id", (user,))
        return [int(str(row[0])) for row in cursor.fetchall()]


def add_tasks(database_url: str, user: str, count: int) -> list[int]:
    """``count`` fresh tasks for ``user`` (for a run of deletes); their ids."""
    with connect(database_url) as connection, connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO tasks (user_id, title) SELECT %s, 'To delete ' || g "
            "FROM generate_series(1, %s) AS g RETURNING id",
            (user, count),
        )
        return [int(str(row[0])) for row in cursor.fetchall()]


def remove_tasks(database_url: str, user: str, title: str) -> None:
    with connect(database_url) as connection, connection.cursor() as cursor:
        cursor.execute("DELETE FROM tasks WHERE user_id = %s AND title = %s", (user, title))
