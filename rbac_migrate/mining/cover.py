"""Minimum set cover over bitmask sets: reductions, greedy start, bounded branch and bound.

Elements and sets are both small integers; ``sets[i]`` is the mask of elements set ``i``
covers. The search spends at most ``budget`` work units (about a microsecond each here; a
node costs more the more elements and sets remain), so its running time is bounded and its
answer deterministic; when it finishes inside the budget the cover is a proven minimum.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

from .bitsets import is_subset, iter_bits

# Pairwise dominance tests are quadratic; past this many elements or sets they cost more than
# they save, and the greedy start plus the bounded search still give a valid cover.
_DOMINANCE_LIMIT = 6000
# The search recurses once per chosen set; deeper covers are left to the greedy start.
_MAX_DEPTH = 600


@dataclass(frozen=True)
class CoverSolution:
    """Chosen set indices, and a lower bound on the size of any cover."""

    chosen: tuple[int, ...]
    lower_bound: int


def solve_set_cover(sets: Sequence[int], universe: int, budget: int) -> CoverSolution:
    """Cover every element of ``universe`` with as few of ``sets`` as the budget allows."""
    forced, universe, live = _reduce(sets, universe)
    start = _prune(sets, _greedy(sets, live, universe), universe)
    search = _Search(sets, live, universe, start)
    if budget and len(start) < _MAX_DEPTH:
        search.run(budget)
    bound = len(search.best) if search.finished else search.root_bound
    return CoverSolution(tuple(sorted(forced + search.best)), len(forced) + bound)


def _covering(sets: Sequence[int], live: list[int], universe: int) -> dict[int, int]:
    """For each element, the mask of live sets that contain it."""
    covering = dict.fromkeys(iter_bits(universe), 0)
    for index in live:
        for element in iter_bits(sets[index] & universe):
            covering[element] |= 1 << index
    return covering


def _reduce(sets: Sequence[int], universe: int) -> tuple[list[int], int, list[int]]:
    """Force sets that are the only cover of some element; drop dominated elements and sets."""
    forced: list[int] = []
    live = [index for index, members in enumerate(sets) if members & universe]
    while universe:
        covering = _covering(sets, live, universe)
        if not all(covering.values()):
            raise ValueError("some element is in no set")
        single = sorted({mask.bit_length() - 1 for mask in covering.values() if mask & (mask - 1) == 0})
        if single:
            forced += single
            for index in single:
                universe &= ~sets[index]
            live = [index for index in live if index not in single and sets[index] & universe]
            continue
        if len(covering) > _DOMINANCE_LIMIT or len(live) > _DOMINANCE_LIMIT:
            break
        smaller = _drop_dominated_elements(covering)
        fewer = _drop_dominated_sets(sets, live, smaller)
        if smaller == universe and len(fewer) == len(live):
            break
        universe, live = smaller, fewer
    return forced, universe, live


def _drop_dominated_elements(covering: dict[int, int]) -> int:
    """Elements left once those implied by another (every cover of it covers them) are gone."""
    kept: list[int] = []
    universe = 0
    for element in sorted(covering, key=lambda e: (covering[e].bit_count(), e)):
        mask = covering[element]
        if not any(is_subset(other, mask) for other in kept):
            kept.append(mask)
            universe |= 1 << element
    return universe


def _drop_dominated_sets(sets: Sequence[int], live: list[int], universe: int) -> list[int]:
    """Live sets left once those covering a subset of another's elements are gone."""
    kept: list[int] = []
    survivors: list[int] = []
    for index in sorted(live, key=lambda i: (-(sets[i] & universe).bit_count(), i)):
        mask = sets[index] & universe
        if mask and not any(is_subset(mask, other) for other in kept):
            kept.append(mask)
            survivors.append(index)
    return sorted(survivors)


def _greedy(sets: Sequence[int], live: list[int], universe: int) -> list[int]:
    """Repeatedly take the set covering the most uncovered elements (lowest index on ties).

    Gains only shrink as elements get covered, so a stale gain on the heap is an upper bound
    and only the top entry needs recounting (lazy greedy, same picks as the plain one).
    """
    heap = [(-(sets[index] & universe).bit_count(), index) for index in live]
    heapq.heapify(heap)
    chosen: list[int] = []
    left = universe
    while left:
        _, index = heapq.heappop(heap)
        gain = (sets[index] & left).bit_count()
        if gain and (not heap or (-gain, index) <= heap[0]):
            chosen.append(index)
            left &= ~sets[index]
        elif gain:
            heapq.heappush(heap, (-gain, index))
    return chosen


def _prune(sets: Sequence[int], chosen: list[int], universe: int) -> list[int]:
    """Drop chosen sets that the others already cover, the least useful first."""
    kept = list(chosen)
    for index in sorted(chosen, key=lambda i: ((sets[i] & universe).bit_count(), i)):
        others = 0
        for other in kept:
            if other != index:
                others |= sets[other]
        if is_subset(universe, others):
            kept.remove(index)
    return kept


class _Search:
    """Depth-first branch and bound on the element with the fewest remaining options."""

    def __init__(self, sets: Sequence[int], live: list[int], universe: int, start: list[int]):
        self.sets = sets
        self.covering = _covering(sets, live, universe)
        # Hard elements first makes the packing bound below both tighter and cheaper.
        self.order = sorted(self.covering, key=lambda e: (self.covering[e].bit_count(), e))
        self.universe = universe
        self.allowed = sum(1 << index for index in live)
        self.best = list(start)
        # A node scans every element and ANDs masks as wide as the set count; charging for both
        # keeps a unit of budget near a fixed amount of time whatever the instance's shape.
        self.step = 10 + len(self.order) * (12 + len(live) // 64) // 256
        self.root_bound = self._bound(universe, self.allowed)
        self.finished = self.root_bound >= len(start)
        self.nodes = 0

    def run(self, budget: int) -> None:
        """Search until the start cover is proven minimal, improved to a proof, or out of budget."""
        if self.finished:
            return
        self.nodes = budget
        self._visit(self.universe, self.allowed, [])
        self.finished = self.nodes > 0

    def _bound(self, left: int, allowed: int) -> int:
        """Elements no two of which share an allowed set: each needs a set of its own."""
        used = 0
        count = 0
        for element in self.order:
            if left >> element & 1:
                options = self.covering[element] & allowed
                if not options & used:
                    used |= options
                    count += 1
        return count

    def _visit(self, left: int, allowed: int, chosen: list[int]) -> None:
        if not left:
            if len(chosen) < len(self.best):
                self.best = list(chosen)
            return
        self.nodes -= self.step
        if self.nodes <= 0 or len(chosen) + self._bound(left, allowed) >= len(self.best):
            return
        element = min(iter_bits(left), key=lambda e: ((self.covering[e] & allowed).bit_count(), e))
        options = self.covering[element] & allowed
        for index in sorted(iter_bits(options), key=lambda i: (-(self.sets[i] & left).bit_count(), i)):
            chosen.append(index)
            self._visit(left & ~self.sets[index], allowed, chosen)
            chosen.pop()
            # Later siblings need not revisit covers that use this set: that branch is done.
            allowed &= ~(1 << index)
            if self.nodes <= 0:
                return
