"""Gathering concurrent calls into batches, so a store pays one round trip for many."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    """Gathers concurrent calls into batches, like a database's group commit.

    A call never waits for a timer: when fewer than `max_in_flight` batches are
    running, the items that arrived in the same loop tick go at once; while
    batches run, arrivals queue and go together in the next one. So one caller
    alone sees a single round trip, and many callers share round trips.
    `run` returns one result or exception per item, in order.
    """

    def __init__(
        self,
        run: Callable[[Sequence[T]], Awaitable[Sequence[R | BaseException]]],
        *,
        max_batch: int,
        max_in_flight: int,
    ) -> None:
        self._run = run
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._pending: deque[tuple[T, asyncio.Future[R]]] = deque()
        self._in_flight = 0
        self._kick_scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def submit(self, item: T) -> R:
        if self._closed:
            raise RuntimeError("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        if not self._kick_scheduled:
            # Start on the next tick, so that every call made in this one shares the batch.
            self._kick_scheduled = True
            loop.call_soon(self._kick)
        return await future

    def _kick(self) -> None:
        self._kick_scheduled = False
        loop = asyncio.get_running_loop()
        while self._pending and self._in_flight < self._max_in_flight:
            size = min(self._max_batch, len(self._pending))
            batch = [self._pending.popleft() for _ in range(size)]
            self._in_flight += 1
            task = loop.create_task(self._flush(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _flush(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            try:
                results: Sequence[R | BaseException] = await self._run([i for i, _ in batch])
            except Exception as exc:
                results = [exc] * len(batch)
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():  # its caller was cancelled
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
        finally:
            for _, future in batch:
                if not future.done():
                    future.cancel()
            self._in_flight -= 1
            if self._pending:
                self._kick()

    async def close(self) -> None:
        """Refuse new calls and wait for those already made."""
        self._closed = True
        while self._pending or self._tasks:
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            else:
                await asyncio.sleep(0)
