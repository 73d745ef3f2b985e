"""Reductions that shrink a role-mining instance without changing its minimum.

The instance is a relation between distinct permission sets (rows) and permission classes
(columns, permissions held by exactly the same rows). A cover is a list of intents (column
sets); a row holds every intent contained in it and must end up with the union equal to its
row. Each reduction below keeps at least one minimum cover reachable:

* a column whose holders are the union of holders of strictly smaller columns is dropped; any
  cover of the rest gets it back by adding it to every role whose holders all hold it;
* a row whose still-uncovered columns all appear in rows strictly inside it needs no cover of
  its own: the roles of those smaller rows fit inside it too (rows stay distinct: a dropped
  column's smaller dominator still tells apart any two rows it separated);
* when every row holding column p also holds all of row u, the row u itself is the only widest
  role covering the grant (u, p), so it belongs to some minimum cover and is fixed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .bitsets import is_subset, iter_bits


@dataclass
class Relation:
    """Distinct rows by distinct columns, with the reductions applied so far."""

    rows: list[int]
    holders: list[int]
    alive: int
    frozen: int = 0
    active: int = 0
    need: list[int] = field(default_factory=list)
    fixed: list[int] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)

    @classmethod
    def build(cls, rows: list[int], width: int, fixed: list[int]) -> Relation:
        """Start from ``rows`` over ``width`` distinct columns; ``fixed`` intents are imposed.

        Columns of imposed intents are frozen: they are neither dropped nor used to justify
        dropping another column (whose restoration would then have to add it to the imposed
        role), so an imposed role such as the baseline keeps exactly the grants it was given.
        """
        holders = [0] * width
        for index, row in enumerate(rows):
            for column in iter_bits(row):
                holders[column] |= 1 << index
        frozen = 0
        for intent in fixed:
            frozen |= intent
        relation = cls(rows=list(rows), holders=holders, alive=(1 << width) - 1, frozen=frozen)
        relation.active = (1 << len(rows)) - 1
        relation.fixed = list(fixed)
        relation.refresh_need()
        return relation

    def extent(self, intent: int) -> int:
        """Rows that hold every column of ``intent``."""
        rows = (1 << len(self.rows)) - 1
        for column in iter_bits(intent):
            rows &= self.holders[column]
        return rows

    def refresh_need(self) -> None:
        """Recompute what each active row still needs after the fixed roles it holds."""
        self.need = [0] * len(self.rows)
        for index in iter_bits(self.active):
            row = self.rows[index]
            covered = 0
            for intent in self.fixed:
                if is_subset(intent, row):
                    covered |= intent
            self.need[index] = row & ~covered
            if not self.need[index]:
                self.active &= ~(1 << index)


def reduce_relation(relation: Relation) -> None:
    """Apply all reductions until none changes anything."""
    while True:
        changed = _drop_dominated_columns(relation)
        if changed:
            relation.refresh_need()
        changed |= _retire_implied_rows(relation)
        changed |= _fix_essential_roles(relation)
        if not changed:
            return


def _drop_dominated_columns(relation: Relation) -> bool:
    holders = relation.holders
    changed = False
    for column in iter_bits(relation.alive & ~relation.frozen):
        mine = holders[column]
        union = 0
        for other in iter_bits(relation.alive & ~relation.frozen):
            if other != column and is_subset(holders[other], mine):
                union |= holders[other]
        if union == mine:
            relation.alive &= ~(1 << column)
            relation.dropped.append(column)
            keep = ~(1 << column)
            relation.rows = [row & keep for row in relation.rows]
            relation.fixed = [intent & keep for intent in relation.fixed]
            changed = True
    return changed


def _retire_implied_rows(relation: Relation) -> bool:
    rows, holders = relation.rows, relation.holders
    everyone = (1 << len(rows)) - 1
    changed = False
    for index in iter_bits(relation.active):
        outside = 0
        for column in iter_bits(relation.alive & ~rows[index]):
            outside |= holders[column]
        smaller = everyone & ~outside & ~(1 << index)
        if all(holders[column] & smaller for column in iter_bits(relation.need[index])):
            relation.active &= ~(1 << index)
            changed = True
    return changed


def _fix_essential_roles(relation: Relation) -> bool:
    changed = False
    for index in iter_bits(relation.active):
        need = relation.need[index]
        if not need:
            continue
        row = relation.rows[index]
        extent = relation.extent(row)
        if any(relation.holders[column] == extent for column in iter_bits(need)):
            relation.fixed.append(row)
            for holder in iter_bits(extent):
                relation.need[holder] &= ~row
            changed = True
    for index in iter_bits(relation.active):
        if not relation.need[index]:
            relation.active &= ~(1 << index)
    return changed


def restore_columns(relation: Relation, intents: list[int], frozen: int = 0) -> list[int]:
    """Give dropped columns back to a cover of the reduced relation.

    A column joins every role whose holders all hold it. That never changes who holds a role,
    so the order of restoration does not matter. Intents whose position is set in ``frozen``
    are left as they are.
    """
    extents = [relation.extent(intent) for intent in intents]
    restored = list(intents)
    for column in relation.dropped:
        mine = relation.holders[column]
        for position, extent in enumerate(extents):
            if not frozen >> position & 1 and is_subset(extent, mine):
                restored[position] |= 1 << column
    return restored
