"""Stores that fail on purpose, for the API's error paths."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from double11.adapters.memory import MemoryStore
from double11.engine.ports import EventRecord


class FailingEventLog:
    """An event log that fails: commits as a database that went away, or every call.

    With `finds` true, finding events still works (so a health check passes);
    with it false, the lookup fails too, with a message that quotes its parameters.
    """

    def __init__(self, store: MemoryStore, *, finds: bool = True) -> None:
        self.store = store
        self.finds = finds

    async def find_event(self, event_id: str) -> EventRecord | None:
        if not self.finds:
            raise RuntimeError(f"lookup failed: parameters ({event_id!r},)")
        return await self.store.find_event(event_id)

    async def commit(self, record: EventRecord) -> EventRecord:
        raise ConnectionError("database went away")

    async def commit_many(self, records: Sequence[EventRecord]) -> list[EventRecord | Exception]:
        return [ConnectionError("database went away") for _ in records]

    async def ledger_for(self, customer_id: str) -> Sequence[Any]:
        raise ConnectionError("database went away")

    async def close(self) -> None:
        return None
