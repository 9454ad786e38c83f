"""Statistics of paired comparisons: the exact McNemar test (every accuracy compared item by item)."""

from __future__ import annotations


def mcnemar_p(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value from the discordant pairs: b (only A right), c (only B right)."""
    from math import comb

    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    return min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2**n)
