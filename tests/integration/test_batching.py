"""The micro-batcher under the scale-out stores: calls share batches, and fail alone."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from double11.adapters.batching import MicroBatcher


class _Recorder:
    def __init__(self, delay_s: float = 0.01) -> None:
        self.batches: list[list[int]] = []
        self.delay_s = delay_s

    async def run(self, items: Sequence[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        await asyncio.sleep(self.delay_s)
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]


async def test_calls_made_while_a_batch_runs_go_together_in_the_next() -> None:
    recorder = _Recorder()
    batcher = MicroBatcher(recorder.run, max_batch=100, max_in_flight=1)
    results = await asyncio.gather(
        *(batcher.submit(i) for i in range(0, 500, 2)), return_exceptions=True
    )
    assert results == [i * 10 for i in range(0, 500, 2)]
    assert [len(b) for b in recorder.batches] == [100, 100, 50]
    await batcher.close()


async def test_a_lone_call_goes_at_once_without_waiting_for_company() -> None:
    recorder = _Recorder(delay_s=0)
    batcher = MicroBatcher(recorder.run, max_batch=100, max_in_flight=2)
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert await batcher.submit(4) == 40
    assert loop.time() - began < 0.05
    assert recorder.batches == [[4]]
    await batcher.close()


async def test_an_item_that_fails_fails_alone() -> None:
    batcher = MicroBatcher(_Recorder().run, max_batch=10, max_in_flight=1)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(4)), return_exceptions=True)
    assert results[0] == 0 and results[2] == 20
    assert isinstance(results[1], ValueError) and isinstance(results[3], ValueError)
    await batcher.close()


async def test_a_batch_that_fails_as_a_whole_fails_each_of_its_callers() -> None:
    async def broken(items: Sequence[int]) -> list[int | BaseException]:
        raise ConnectionError("database gone")

    batcher = MicroBatcher(broken, max_batch=10, max_in_flight=1)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    await batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        await batcher.submit(1)


async def test_closing_waits_for_the_calls_already_made() -> None:
    recorder = _Recorder()
    batcher = MicroBatcher(recorder.run, max_batch=2, max_in_flight=1)
    pending = [asyncio.ensure_future(batcher.submit(i)) for i in (0, 2, 4, 6, 8)]
    await asyncio.sleep(0)
    await batcher.close()
    assert all(p.done() for p in pending)
    assert [p.result() for p in pending] == [0, 20, 40, 60, 80]
