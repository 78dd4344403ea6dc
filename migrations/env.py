"""Alembic environment: runs against the app's connection, or DATABASE_URL from the CLI."""

from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, text
from sqlmodel import SQLModel

import models  # noqa: F401  (registers the tables on SQLModel.metadata)
from core.config import Settings
from db import make_engine

config = context.config
target_metadata = SQLModel.metadata

MIGRATION_LOCK_ID = 4_242_001  # an arbitrary constant, the same in every replica


def run(connection: Connection) -> None:
    # Concurrent start-ups (replicas, `uvicorn --workers N`) take turns migrating: the first
    # migrates, the others wait, then find the schema at head.
    if connection.dialect.name == "postgresql":
        # A migration may rightly run long (an index on a big table), and so may the wait for
        # another process's: no DB_STATEMENT_TIMEOUT for either, so this comes first.
        connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
    elif connection.dialect.name == "sqlite":
        # The database's write lock, taken before alembic even reads its version table. (The
        # sqlite3 module opens no transaction for SELECT or DDL by itself.)
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


shared = config.attributes.get("connection")
if shared is not None:
    run(shared)
else:
    if config.config_file_name:
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    engine = make_engine(Settings())  # the app's engine: same URL handling and connect timeout
    with engine.begin() as connection:
        run(connection)
    engine.dispose()
