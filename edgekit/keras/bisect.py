"""Bisection for budgets: the least (or greatest) setting whose result still meets a goal.

Channel pruning searches the ratio for a MAC or latency budget, low-rank factorisation the
rank for an energy or MAC goal; both are monotone in the setting, so one bisection serves.

>>> bisect(lambda x: x, lambda c: c * c >= 2.0, 0.0, 2.0, iterations=20)
1.414...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def bisect(
    make: Callable[[float], Any],
    ok: Callable[[Any], bool],
    lo: float,
    hi: float,
    iterations: int,
    smallest: bool = True,
) -> Any:
    """The candidate `make(x)` for the least x in [lo, hi] that is `ok` (`smallest=True`: ok
    holds above a threshold), or the greatest (`smallest=False`: ok holds below one).
    None when even the most permissive end is not ok."""
    best = make(hi if smallest else lo)
    if not ok(best):
        return None
    for _ in range(iterations):
        mid = (lo + hi) / 2
        candidate = make(mid)
        good = ok(candidate)
        if good:
            best = candidate
        if good == smallest:
            hi = mid
        else:
            lo = mid
    return best
