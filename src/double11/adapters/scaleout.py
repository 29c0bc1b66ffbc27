"""The scale-out stores: customers and the event log in PostgreSQL, limits in Redis.

Any number of stateless worker processes open these against the same
PostgreSQL database and Redis. One event costs each worker five store calls
(find the event, get the customer, observe, take, commit), and none of them is
a round trip of its own: concurrent calls share a batched statement, a group
commit or a Redis pipeline (`double11.adapters.postgres`,
`double11.adapters.redis_limits`).

Opening migrates the schema (one process at a time, under the migration lock),
reconciles Redis with the ledger (`double11.adapters.reconcile`), and then keeps
reconciling in the background, one worker per period: orphan claims of a worker
that died are released within about ``grace + reconcile_every``. If Redis loses
the book while workers run, the first call that needs it rebuilds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from double11.adapters.postgres import DEFAULT_COMMIT_TIMEOUT_S, PostgresStore
from double11.adapters.reconcile import DEFAULT_GRACE, ensure_ready, reconcile
from double11.adapters.redis_limits import (
    DEFAULT_PREFIX,
    HiredisPackingConnection,
    RedisLimitBook,
)
from double11.engine.ports import Stores

log = logging.getLogger(__name__)

DEFAULT_RECONCILE_EVERY = timedelta(seconds=60)
REDIS_MAX_CONNECTIONS = 64


def async_url(db_url: str) -> str:
    """The PostgreSQL URL with the asyncpg driver, whatever driver it named."""
    return (
        make_url(db_url).set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    )


async def connect_postgres(
    db_url: str, *, commit_timeout_s: float = DEFAULT_COMMIT_TIMEOUT_S
) -> PostgresStore:
    """A `PostgresStore` on a pool sized for its batchers (it does not migrate)."""
    # Pre-ping costs a round trip per batch, not per event, and spares the first
    # batches after a database failover from failing on dead pooled connections.
    engine = create_async_engine(
        async_url(db_url), pool_size=10, max_overflow=10, pool_pre_ping=True
    )
    return PostgresStore(engine, commit_timeout_s=commit_timeout_s)


def connect_redis(redis_url: str, *, prefix: str = DEFAULT_PREFIX) -> RedisLimitBook:
    """A `RedisLimitBook` on a bounded connection pool."""
    # A blocking pool: a burst waits for a connection instead of opening hundreds.
    options: dict[str, Any] = {}
    if urlsplit(redis_url).scheme == "redis":  # TLS and unix sockets keep their own class
        options["connection_class"] = HiredisPackingConnection
    pool = BlockingConnectionPool.from_url(
        redis_url,
        decode_responses=True,
        max_connections=REDIS_MAX_CONNECTIONS,
        timeout=10,
        **options,
    )
    client = Redis.from_pool(pool)
    return RedisLimitBook(client, prefix=prefix)


class _Reconciler:
    """Reconciles every `every` (jittered), in one process at a time per prefix."""

    def __init__(
        self, pg: PostgresStore, limits: RedisLimitBook, grace: timedelta, every: timedelta
    ) -> None:
        self._pg = pg
        self._limits = limits
        self._grace = grace
        self._every = every.total_seconds()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        lock = self._limits.prefix + "lock:reconcile"
        while True:
            # Jitter, so that workers started together do not all wake together.
            await asyncio.sleep(self._every * random.uniform(0.8, 1.2))
            try:
                # One reconcile per period across all workers: the lock outlives the run.
                token = uuid.uuid4().hex
                if await self._limits.client.set(lock, token, nx=True, px=int(self._every * 800)):
                    await reconcile(self._pg, self._limits, self._grace)
            except asyncio.CancelledError:
                raise
            except Exception:
                # A store being down is reported by the requests that need it; try later.
                log.exception("background reconcile failed")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class _Closer:
    def __init__(
        self, reconciler: _Reconciler | None, pg: PostgresStore, limits: RedisLimitBook
    ) -> None:
        self._reconciler = reconciler
        self._pg = pg
        self._limits = limits

    async def close(self) -> None:
        try:
            if self._reconciler is not None:
                await self._reconciler.close()
        finally:
            try:
                await self._pg.close()
            finally:
                await self._limits.close()


async def open_scaleout_stores(
    db_url: str,
    redis_url: str,
    *,
    prefix: str = DEFAULT_PREFIX,
    grace: timedelta = DEFAULT_GRACE,
    reconcile_every: timedelta | None = DEFAULT_RECONCILE_EVERY,
    commit_timeout_s: float = DEFAULT_COMMIT_TIMEOUT_S,
) -> Stores:
    """Migrate, connect, reconcile and return the stores; `Stores.close` undoes it all."""
    if commit_timeout_s >= grace.total_seconds():
        raise ValueError("the grace period must exceed the commit timeout")
    from double11.adapters import migrate  # Alembic: imported only by those who migrate

    # Alembic runs on a synchronous driver; keep it off the event loop.
    await asyncio.to_thread(migrate.upgrade, db_url)
    pg = await connect_postgres(db_url, commit_timeout_s=commit_timeout_s)
    limits = connect_redis(redis_url, prefix=prefix)
    reconciler: _Reconciler | None = None
    try:

        async def rebuild() -> None:
            await ensure_ready(pg, limits)

        limits.on_not_ready = rebuild
        limits.commit_outcome_unknown = pg.commit_outcome_unknown
        await reconcile(pg, limits, grace)
        if reconcile_every is not None:
            reconciler = _Reconciler(pg, limits, grace, reconcile_every)
            reconciler.start()
    except BaseException:
        await _Closer(reconciler, pg, limits).close()
        raise
    return Stores(pg, pg, limits, (_Closer(reconciler, pg, limits),), config=pg)
