"""Database engines: PostgreSQL (psycopg 3) in production, SQLite as the embedded default.

The same async code runs on both. SQLite gets `BEGIN IMMEDIATE` for every transaction so that the token
broker's "lock the connection row, re-read, refresh, commit" is serialised across processes there too
(PostgreSQL uses `SELECT ... FOR UPDATE`), plus WAL and a busy timeout so concurrent processes wait for
the lock instead of failing with "database is locked".
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

SQLITE_BUSY_TIMEOUT_MS = 30_000


def async_url(database_url: str) -> str:
    url = make_url(_normalise(database_url))
    if url.drivername in ("sqlite", "sqlite+pysqlite"):
        url = url.set(drivername="sqlite+aiosqlite")
    elif url.drivername in ("postgresql", "postgresql+psycopg"):
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


def sync_url(database_url: str) -> str:
    url = make_url(_normalise(database_url))
    if url.drivername in ("sqlite", "sqlite+aiosqlite"):
        url = url.set(drivername="sqlite+pysqlite")
    elif url.drivername in ("postgresql", "postgresql+psycopg"):
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


def is_sqlite(database_url: str) -> bool:
    return _normalise(database_url).startswith("sqlite")


def _normalise(database_url: str) -> str:
    if database_url.startswith("postgres://"):
        return "postgresql://" + database_url[len("postgres://") :]
    return database_url


def ensure_sqlite_directory(database_url: str) -> None:
    url = make_url(_normalise(database_url))
    if url.drivername.startswith("sqlite") and url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)


def install_sqlite_pragmas(sync_engine: Any) -> None:
    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" hook below issue BEGIN itself instead of the driver's implicit BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """One async engine + session factory, created once at start-up and passed down."""

    def __init__(self, database_url: str, *, pool_size: int = 10, pooled: bool = True) -> None:
        self.url = database_url
        self.is_sqlite = is_sqlite(database_url)
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if self.is_sqlite:
            ensure_sqlite_directory(database_url)
        if not pooled:
            # For an engine used from an event loop that ends before the engine does (test servers in a
            # thread): no connection outlives the request that opened it.
            kwargs = {"poolclass": NullPool}
        elif not self.is_sqlite:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size * 2)
        self.engine: AsyncEngine = create_async_engine(async_url(database_url), **kwargs)
        if self.is_sqlite:
            install_sqlite_pragmas(self.engine.sync_engine)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on any error."""
        async with self.sessions() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()
