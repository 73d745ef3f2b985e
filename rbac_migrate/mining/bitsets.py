"""Sets of small integers packed into Python ints, and intent enumeration over them.

Python's arbitrary-precision ints make AND/OR/subset tests on a few thousand members run in
C, which is what lets the miner stay pure Python and still be fast.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator


def iter_bits(mask: int) -> Iterator[int]:
    """Yield the positions of the set bits of ``mask``, lowest first."""
    if mask.bit_length() > 1024:
        # Peeling the low bit copies the whole int each time; on wide masks scanning the
        # binary text once is far cheaper.
        text = bin(mask)[:1:-1]
        position = text.find("1")
        while position >= 0:
            yield position
            position = text.find("1", position + 1)
        return
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


def mask_of(positions: Iterable[int]) -> int:
    """Pack positions into a mask."""
    mask = 0
    for position in positions:
        mask |= 1 << position
    return mask


def is_subset(small: int, big: int) -> bool:
    """Whether every bit of ``small`` is set in ``big``."""
    return small & ~big == 0


def intersection_closure(rows: Iterable[int], cap: int) -> tuple[list[int], bool]:
    """All non-empty intersections of any subset of ``rows``, sorted.

    These are the closed permission sets (intents) of the relation: every role of an optimal
    cover can be widened to one of them. Enumeration stops growing after ``cap`` intents, so a
    pathological input cannot run away; the rows themselves are always included. The flag says
    whether the list is complete.
    """
    found: set[int] = set()
    complete = True
    for row in rows:
        if complete:
            fresh = {row & known for known in found}
            fresh.add(row)
            fresh.discard(0)
            found |= fresh
            if len(found) > cap:
                complete = False
        else:
            found.add(row)
    return sorted(found), complete
