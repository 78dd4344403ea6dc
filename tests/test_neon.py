"""Neon: the console's connection strings work as pasted; nothing relies on session state.

Neon's pooled (``-pooler``) host is PgBouncer in transaction mode: a server connection serves
another client after each transaction, so session ``SET``s would leak or vanish. The service
sends its statement timeout as ``SET LOCAL`` in the same message as each statement instead
(one implicit transaction, one round trip), and the URL's own TLS parameters (``sslmode``,
``channel_binding``) reach libpq untouched. tests/test_pgbouncer.py runs all of it through a
real PgBouncer.
"""

import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import psycopg
import pytest

from core.config import Settings, normalize_url
from core.errors import ServiceUnavailable
from db import PostgresDatabase, libpq_parameters, statement_timeout_prefix
from tests.conftest import make_settings
from tests.pgproxy import PgProxy

NEON_POOLED = (
    "postgresql://alex:AbC123dEf@ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech"
    "/neondb?sslmode=require&channel_binding=require"
)


def parameters_for(url: str, **overrides: Any) -> dict[str, Any]:
    """Every keyword libpq is given for this DATABASE_URL (nothing connects)."""
    return libpq_parameters(normalize_url(url), make_settings(url, **overrides))


def with_database(
    url: str, work: Callable[[PostgresDatabase], Awaitable[Any]], **settings: Any
) -> Any:
    """Run ``work`` against the service's own database layer, then close it."""

    async def run() -> Any:
        database = PostgresDatabase(normalize_url(url), make_settings(url, **settings))
        try:
            return await work(database)
        finally:
            await database.close()

    return anyio.run(run)


@pytest.mark.parametrize(
    "url",
    [NEON_POOLED, NEON_POOLED.replace("postgresql://", "postgres://", 1)],
    ids=["postgresql", "postgres"],
)
def test_neon_console_url_works_as_pasted(url: str) -> None:
    assert Settings(_env_file=None, database_url=url).database_url == url  # accepted
    assert parameters_for(url) == {
        "host": "ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech",
        "dbname": "neondb",
        "user": "alex",
        "password": "AbC123dEf",
        "sslmode": "require",  # TLS as the URL says
        "channel_binding": "require",
        "connect_timeout": 5,  # and ours, for what the URL leaves out
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 3,
        "tcp_user_timeout": 10000,
    }


def test_parameters_in_the_url_win_over_the_defaults() -> None:
    parameters = parameters_for(NEON_POOLED + "&connect_timeout=15&keepalives_idle=60")
    assert parameters["connect_timeout"] == "15"
    assert parameters["keepalives_idle"] == "60"
    assert parameters["keepalives_interval"] == 2


def test_statement_timeout_travels_with_the_statement_never_as_session_state(pg_url: str) -> None:
    # What PgBouncer's transaction mode needs: the setting lives and dies with the statement's
    # own transaction, sent in the same message as the statement.
    proxy = PgProxy(pg_url)

    async def work(database: PostgresDatabase) -> tuple[Any, Any]:
        inside = await database.fetch("SHOW statement_timeout", {}, write=False)
        async with database.pool.connection() as pooled:  # the same, only pooled connection
            cursor = await pooled.connection.execute("SHOW statement_timeout")
            after = await cursor.fetchone()
            database.pool.reuse(pooled)
        return inside[0][0], after

    try:
        inside, after = with_database(proxy.url, work, db_pool_size=1, db_statement_timeout=2.5)
    finally:
        proxy.close()
    assert inside == "2500ms"
    assert after is not None
    assert after[0] != "2500ms"  # the session itself was never changed
    assert proxy.queries[0] == "SET LOCAL statement_timeout = 2500; SHOW statement_timeout"


def test_a_statement_past_the_timeout_is_cancelled(pg_url: str) -> None:
    async def work(database: PostgresDatabase) -> None:
        await database.fetch("SELECT pg_sleep(5)", {}, write=False)

    started = time.monotonic()
    with pytest.raises(ServiceUnavailable) as caught:
        with_database(pg_url, work, db_statement_timeout=0.2)
    assert time.monotonic() - started < 4
    assert isinstance(caught.value.__cause__, psycopg.errors.QueryCanceled)  # 57014


def test_statement_timeout_zero_sends_nothing_extra(pg_url: str) -> None:
    proxy = PgProxy(pg_url)

    async def work(database: PostgresDatabase) -> None:
        await database.fetch("SELECT 1", {}, write=False)

    try:
        with_database(proxy.url, work, db_statement_timeout=0)
    finally:
        proxy.close()
    assert proxy.queries == ["SELECT 1"]


def test_the_neon_tls_parameters_reach_libpq_and_are_enforced(pg_url: str) -> None:
    # The parameters above show what libpq is given; this shows libpq understands and enforces
    # them (channel_binding needs libpq 13+; an older one would refuse the pasted URL outright).
    # The test server offers neither TLS nor SCRAM, so a connection that demands them must
    # fail, saying which demand was unmet: proof that nothing was silently downgraded.
    assert psycopg.pq.version() >= 130000
    url = normalize_url(pg_url).update_query_dict(
        {"sslmode": "require", "channel_binding": "require"}
    )

    async def work(database: PostgresDatabase) -> None:
        await database.fetch("SELECT 1", {}, write=False)

    with pytest.raises(ServiceUnavailable) as caught:
        with_database(url.render_as_string(hide_password=False), work)
    message = str(caught.value.__cause__)
    assert (
        "server does not support SSL, but SSL was required" in message  # TCP, no TLS here
        or "channel binding required, but server authenticated client without channel binding"
        in message  # a Unix socket (the embedded server): TLS does not apply, SCRAM does
    ), message


def test_a_statement_timeout_under_a_millisecond_is_one_not_no_limit() -> None:
    # PostgreSQL reads 0 as "no limit": a tiny timeout must not round down to it.
    assert statement_timeout_prefix(0.0004) == "SET LOCAL statement_timeout = 1; "
    assert statement_timeout_prefix(10) == "SET LOCAL statement_timeout = 10000; "
    assert statement_timeout_prefix(0) == ""
