"""Make the roles of an exact cover lean: drop grants the holders get from another role anyway.

Reductions and the cover search pick the widest roles (closed permission sets), so a "sales"
role tends to repeat every grant of the "staff" role its holders also have. Trimming removes
such repeats, which keeps roles readable and their overlaps small without changing how many
roles there are or what anyone ends up with.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from .bitsets import iter_bits


def trim_roles(holders: Sequence[int], intents: list[int], weights: Sequence[int], keep: int = 0) -> list[int]:
    """Return ``intents`` with every grant removed that all of a role's holders get elsewhere.

    ``holders`` gives the rows holding each column, ``weights`` the users behind each row.
    Roles held by the fewest users are trimmed first, so shared grants stay in the widely held
    roles. A role whose every grant is covered elsewhere disappears. Roles whose position is
    set in ``keep`` are left as they are.
    """
    intents = list(intents)
    everyone = (1 << len(weights)) - 1
    extents = [_extent(holders, everyone, intent) for intent in intents]
    counts = [Counter[int]() for _ in weights]
    for intent, extent in zip(intents, extents, strict=True):
        _count(counts, extent, intent, +1)

    def held_by(position: int) -> int:
        return sum(weights[index] for index in iter_bits(extents[position]))

    for position in sorted(range(len(intents)), key=lambda p: (held_by(p), p)):
        if keep >> position & 1:
            continue
        for column in iter_bits(intents[position]):
            if all(counts[index][column] > 1 for index in iter_bits(extents[position])):
                _count(counts, extents[position], 1 << column, -1)
                intents[position] &= ~(1 << column)
                if intents[position]:
                    grown = _extent(holders, everyone, intents[position])
                    _count(counts, grown & ~extents[position], intents[position], +1)
                    extents[position] = grown
    return [intent for intent in intents if intent]


def _extent(holders: Sequence[int], everyone: int, intent: int) -> int:
    rows = everyone
    for column in iter_bits(intent):
        rows &= holders[column]
    return rows


def _count(counts: list[Counter[int]], extent: int, intent: int, step: int) -> None:
    for index in iter_bits(extent):
        for column in iter_bits(intent):
            counts[index][column] += step
