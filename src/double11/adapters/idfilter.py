"""A Bloom filter of event ids: "certainly never seen" without a read.

The SQLite store asks it before looking an event up in the file: nearly every
event is new, and a point read per event cost ~11% of the pipeline's time in
a profile of benchmarks/bench_inprocess.py. A filter never answers "absent"
for an id it was given, so an answer of "maybe" just falls back to the read.
No library is used: the ones on PyPI are C extensions or unmaintained, and
this is twenty lines of stdlib.

The positions come from Python's own `hash` of the string (SipHash, 64 bits,
computed in C and cached on the string), not from a digest: the filter lives
only in this process's memory and is rebuilt at open, so a hash salted per
process is fine, and it costs a fraction of a blake2b call.
"""

from __future__ import annotations

from collections.abc import Iterable

DEFAULT_BITS = 1 << 27  # 16 MiB: under 0.2% false positives at ten million ids
HASHES = 7


class IdFilter:
    """A fixed-size Bloom filter over strings (double hashing of one 64-bit hash)."""

    __slots__ = ("_bits", "_size")

    def __init__(self, bits: int = DEFAULT_BITS) -> None:
        if bits < 8 or bits & (bits - 1):
            raise ValueError("bits must be a power of two, at least 8")
        self._size = bits
        self._bits = bytearray(bits // 8)

    def _positions(self, key: str) -> list[int]:
        h = hash(key) & 0xFFFF_FFFF_FFFF_FFFF
        first = h & 0xFFFF_FFFF
        step = (h >> 32) | 1
        mask = self._size - 1
        return [(first + i * step) & mask for i in range(HASHES)]

    def add(self, key: str) -> None:
        bits = self._bits
        for p in self._positions(key):
            bits[p >> 3] |= 1 << (p & 7)

    def add_all(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.add(key)

    def might_contain(self, key: str) -> bool:
        """False only for a key never added."""
        bits = self._bits
        return all(bits[p >> 3] & (1 << (p & 7)) for p in self._positions(key))
