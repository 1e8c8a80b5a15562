"""Cheap deterministic pseudo-randomness: every generated value is a pure function of
(seed, region, kind, index), so a million records need no storage and no RNG state."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

_MASK64 = (1 << 64) - 1


def mix64(x: int) -> int:
    """SplitMix64 finaliser: a fast, well-spread 64-bit hash of an integer."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def stream_key(seed: int, region_salt: int, kind: str) -> int:
    """A 64-bit key for one (seed, region, record kind) stream."""
    k = mix64(seed & _MASK64)
    k = mix64(k ^ region_salt)
    for ch in kind.encode():
        k = mix64(k ^ ch)
    return k


class Draw:
    """Independent draws for one record: a Mersenne Twister seeded from (stream key, index).

    Seeding costs a few microseconds, each draw tens of nanoseconds, and the sequence is
    stable across Python versions (int seeding and `random()` are specified).
    """

    __slots__ = ("_random", "bits", "_rand")

    def __init__(self, key: int, index: int) -> None:
        self._random = random.Random(mix64(key ^ (index * 0xD1B54A32D192ED03 & _MASK64)))
        self._rand = self._random.random
        self.bits = lambda: self._random.getrandbits(64)

    def below(self, n: int) -> int:
        """A value in [0, n)."""
        return int(self._rand() * n) if n > 0 else 0

    def chance(self, percent: float) -> bool:
        """True with the given probability in percent."""
        return self._rand() * 100.0 < percent

    def pick(self, pool: Sequence[T]) -> T:
        return pool[int(self._rand() * len(pool))]

    def between(self, low: int, high: int) -> int:
        """An integer in [low, high]."""
        return low + int(self._rand() * (high - low + 1)) if high > low else low

    def weighted(self, table: Sequence[tuple[T, int]]) -> T:
        """Pick from (value, weight) pairs."""
        total = sum(w for _, w in table)
        r = self._rand() * total
        for value, weight in table:
            if r < weight:
                return value
            r -= weight
        return table[-1][0]

    def sample(self, pool: Sequence[T], k: int) -> list[T]:
        """k distinct items of pool, in a drawn order."""
        k = min(k, len(pool))
        if k <= 0:
            return []
        return self._random.sample(list(pool), k)

    def uuid(self) -> str:
        """A UUID-shaped (version 4 looking) string."""
        h = f"{self._random.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:32]}"
