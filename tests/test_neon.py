"""Neon: the console's connection strings work as pasted; nothing relies on session state.

Neon's pooled (``-pooler``) host is PgBouncer in transaction mode: a server connection serves
another client after each COMMIT, so session ``SET``s would leak or vanish. The service sets its
statement timeout with ``SET LOCAL`` inside each transaction instead, and the URL's own TLS
parameters (``sslmode``, ``channel_binding``) reach libpq untouched.
"""

from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy import exc as sa_exc

from core.config import Settings, normalize_url
from db import make_engine
from tests.conftest import make_settings

NEON_POOLED = (
    "postgresql://alex:AbC123dEf@ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech"
    "/neondb?sslmode=require&channel_binding=require"
)


class _Captured(Exception):
    pass


def libpq_parameters(url: str, **overrides: Any) -> dict[str, Any]:
    """Every keyword psycopg2 would be called with, caught at the last step: nothing connects."""
    engine = make_engine(make_settings(url, **overrides))
    captured: dict[str, Any] = {}

    def capture(_dialect: Any, _record: Any, _args: Any, parameters: dict[str, Any]) -> None:
        captured.update(parameters)
        raise _Captured

    event.listen(engine, "do_connect", capture)
    with pytest.raises(_Captured):
        engine.connect()
    engine.dispose()
    return captured


@pytest.mark.parametrize(
    "url",
    [NEON_POOLED, NEON_POOLED.replace("postgresql://", "postgres://", 1)],
    ids=["postgresql", "postgres"],
)
def test_neon_console_url_works_as_pasted(url: str) -> None:
    assert Settings(_env_file=None, database_url=url).database_url == url  # accepted
    parameters = libpq_parameters(url)
    assert parameters == {
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
    parameters = libpq_parameters(NEON_POOLED + "&connect_timeout=15&keepalives_idle=60")
    assert parameters["connect_timeout"] == "15"
    assert parameters["keepalives_idle"] == "60"
    assert parameters["keepalives_interval"] == 2


def test_statement_timeout_is_per_transaction_never_session_state(pg_url: str) -> None:
    # What PgBouncer's transaction mode needs: the setting lives and dies with the transaction.
    engine = make_engine(make_settings(pg_url, db_pool_size=1, db_statement_timeout=2.5))

    def session_value() -> object:
        raw = engine.raw_connection()  # the one pooled connection, outside our transactions
        try:
            cursor = raw.cursor()
            cursor.execute("SHOW statement_timeout")
            row = cursor.fetchone()
            raw.rollback()
        finally:
            raw.close()
        assert row is not None
        return row[0]

    before = session_value()  # the server's (or role's) own default, whatever it is
    assert before != "2500ms"
    with engine.begin() as conn:
        assert conn.execute(text("SHOW statement_timeout")).scalar_one() == "2500ms"
    assert session_value() == before  # the session itself was never changed
    engine.dispose()


def test_a_statement_past_the_timeout_is_cancelled(pg_url: str) -> None:
    engine = make_engine(make_settings(pg_url, db_statement_timeout=0.2))
    with pytest.raises(sa_exc.OperationalError) as caught, engine.begin() as conn:
        conn.execute(text("SELECT pg_sleep(5)"))
    assert getattr(caught.value.orig, "pgcode", None) == "57014"  # query_canceled
    engine.dispose()


def test_statement_timeout_zero_sends_nothing_extra(pg_url: str) -> None:
    engine = make_engine(make_settings(pg_url, db_statement_timeout=0))
    sent: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: sent.append(args[2]))
    with engine.begin() as conn:
        conn.execute(text("SELECT 1"))
    engine.dispose()
    assert sent == ["SELECT 1"]


def test_the_neon_tls_parameters_reach_libpq_and_are_enforced(pg_url: str) -> None:
    # The capture above shows what psycopg2 is given; this shows libpq understands and enforces
    # it (channel_binding needs libpq 13+; an older one would refuse the pasted URL outright).
    # The test server offers neither TLS nor SCRAM, so a connection that demands them must
    # fail, saying which demand was unmet: proof that nothing was silently downgraded.
    import psycopg2  # type: ignore[import-untyped]  # (no stubs pinned; one attribute read)

    assert psycopg2.__libpq_version__ >= 130000
    url = normalize_url(pg_url).update_query_dict(
        {"sslmode": "require", "channel_binding": "require"}
    )
    engine = make_engine(make_settings(url.render_as_string(hide_password=False)))
    with pytest.raises(sa_exc.OperationalError) as caught:
        engine.connect()
    engine.dispose()
    message = str(caught.value.orig)
    assert (
        "server does not support SSL, but SSL was required" in message  # TCP, no TLS here
        or "channel binding required, but server authenticated client without channel binding"
        in message  # a Unix socket (the embedded server): TLS does not apply, SCRAM does
    ), message


def test_a_statement_timeout_under_a_millisecond_is_one_not_no_limit(pg_url: str) -> None:
    # PostgreSQL reads 0 as "no limit": a tiny timeout must not round down to it. Only the SET
    # is sent (nothing runs under a 1 ms limit, which a busy machine could exceed).
    engine = make_engine(make_settings(pg_url, db_statement_timeout=0.0004))
    sent: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: sent.append(args[2]))
    conn = engine.connect()
    conn.begin()
    conn.invalidate()  # closes the connection: nothing else is sent
    conn.close()
    engine.dispose()
    assert sent == ["SET LOCAL statement_timeout = 1"]
