"""Group members packed as arrays of entity numbers, and what writing a snapshot changed."""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterable
from dataclasses import dataclass


def pack(indexes: Iterable[int]) -> bytes:
    packed = array("i", indexes)
    if sys.byteorder == "big":
        packed.byteswap()  # stored little-endian so a store can move between machines
    return packed.tobytes()


def unpack(blob: bytes | None) -> tuple[int, ...]:
    return tuple(unpacked(blob))


def unpacked(blob: bytes | None) -> array:
    """The entity numbers as an array: a copy of the bytes, no Python number made for each."""
    packed = array("i")
    packed.frombytes(blob or b"")
    if sys.byteorder == "big":
        packed.byteswap()
    return packed


@dataclass(frozen=True)
class Written:
    """What saving a snapshot changed in the store."""

    snapshot_id: int | None
    added: int
    changed: int
    removed: int

    @property
    def nothing(self) -> bool:
        return not (self.added or self.changed or self.removed)
