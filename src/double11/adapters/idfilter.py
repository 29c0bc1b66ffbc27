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

DEFAULT_BITS = 1 << 27  # 16 MiB: about 0.8% false positives at ten million ids
# Three probes, not the seven that are optimal for the size: every event pays for
# `add`, and a false positive costs only a point read, rare at the sizes of a
# campaign (about 1e-5 at a million ids).
HASHES = 3
_LOW32 = 0xFFFF_FFFF
_LOW64 = 0xFFFF_FFFF_FFFF_FFFF


class IdFilter:
    """A fixed-size Bloom filter over strings (double hashing of one 64-bit hash)."""

    __slots__ = ("_bits", "_mask")

    def __init__(self, bits: int = DEFAULT_BITS) -> None:
        if bits < 8 or bits & (bits - 1):
            raise ValueError("bits must be a power of two, at least 8")
        self._mask = bits - 1
        self._bits = bytearray(bits // 8)

    # The three probes are written out rather than looped or listed by a helper:
    # every event passes here, and that halved the filter's cost (2.5 -> ~1 µs an add).
    def add(self, key: str) -> None:
        h = hash(key) & _LOW64
        at, step, mask, bits = h & _LOW32, (h >> 32) | 1, self._mask, self._bits
        p = at & mask
        bits[p >> 3] |= 1 << (p & 7)
        p = (at + step) & mask
        bits[p >> 3] |= 1 << (p & 7)
        p = (at + 2 * step) & mask
        bits[p >> 3] |= 1 << (p & 7)

    def add_all(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.add(key)

    def might_contain(self, key: str) -> bool:
        """False only for a key never added."""
        h = hash(key) & _LOW64
        at, step, mask, bits = h & _LOW32, (h >> 32) | 1, self._mask, self._bits
        p = at & mask
        if not bits[p >> 3] & (1 << (p & 7)):
            return False
        p = (at + step) & mask
        if not bits[p >> 3] & (1 << (p & 7)):
            return False
        p = (at + 2 * step) & mask
        return bool(bits[p >> 3] & (1 << (p & 7)))
