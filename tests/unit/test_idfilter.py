"""The Bloom filter the SQLite store asks before reading an event from the file."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from double11.adapters.idfilter import IdFilter


@given(st.lists(st.text(max_size=40), max_size=300), st.text(max_size=40))
def test_an_added_id_is_always_maybe_present(added: list[str], other: str) -> None:
    seen = IdFilter(bits=1 << 12)
    seen.add_all(added)
    assert all(seen.might_contain(key) for key in added)
    if not added:
        assert not seen.might_contain(other)


def test_ids_never_added_are_mostly_reported_absent() -> None:
    seen = IdFilter(bits=1 << 16)
    seen.add_all(f"evt-{i}" for i in range(5_000))
    false_positives = sum(seen.might_contain(f"other-{i}") for i in range(20_000))
    # 5,000 ids in 65,536 bits with 3 probes: about 0.9% (~171) expected; allow for chance.
    assert false_positives < 300


def test_odd_ids_with_lone_surrogates_are_hashed_not_refused() -> None:
    seen = IdFilter(bits=1 << 10)
    seen.add("\ud800-event")
    assert seen.might_contain("\ud800-event")


@pytest.mark.parametrize("bits", [0, 4, 1000, 3 << 10])
def test_a_size_that_is_not_a_power_of_two_of_at_least_eight_bits_is_refused(bits: int) -> None:
    with pytest.raises(ValueError, match="power of two"):
        IdFilter(bits=bits)
