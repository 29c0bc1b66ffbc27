"""Process-wide tuning for a long-running server, applied once start-up is done."""

from __future__ import annotations

import gc

# Young objects per collection of the youngest generation (CPython's default is 700).
# An event allocates a few hundred short-lived objects; collecting every 700 made the
# collector ~30% of a decision's CPU in benchmarks/bench_inprocess.py. 50,000 keeps the
# pauses short (the young generation stays small) and lets most garbage die by refcount.
YOUNG_THRESHOLD = 50_000


def settle_heap() -> None:
    """Collect once, then freeze what start-up built and collect the young less often.

    Frozen objects (the campaign, compiled conditions, state rebuilt from the
    store) are never traversed again, so full collections cost what the
    server allocated since, not what it loaded.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
