"""Ranged attribute retrieval: read a ``member;range=0-1499`` answer to the end.

Active Directory hands out at most MaxValRange (1,500) values of a multi-valued attribute per
answer and names the slice it sent: ``member;range=0-1499``; ``*`` as the upper bound marks the
last slice.  ldap3's own loop crashes when a server answers a range that starts past the last
value, so ``connect`` turns it off and every search result passes through :func:`completed`.

The next slice asked for is as wide as the last one the server sent.  Against Windows that is
what the server would send anyway; against Samba, which never splits on its own, it lets a test
that asks for a narrow first slice walk the whole loop.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator

from ..errors import DirectoryError

_RANGE = re.compile(r"(?P<attr>[^;]+);range=(?P<low>\d+)-(?P<high>\d+|\*)\Z", re.IGNORECASE)

RawEntry = dict[str, list[bytes]]
Fetch = Callable[[str, str], RawEntry]


def completed(search_raw: Callable[..., Iterator[tuple[str, RawEntry]]]):
    """Decorate ``Directory.search_raw`` so every ranged attribute comes back whole, under its plain name."""

    @functools.wraps(search_raw)
    def wrapper(directory, *args, **kwargs) -> Iterator[tuple[str, RawEntry]]:
        def fetch(dn: str, attribute: str) -> RawEntry:
            for _dn, raw in search_raw(directory, dn, "(objectClass=*)", [attribute], "base", False):
                return raw
            return {}

        for dn, raw in search_raw(directory, *args, **kwargs):
            for name in raw:  # inline: this runs for every entry of a 100,000-user snapshot
                if ";" in name:
                    raw = complete(dn, raw, fetch)
                    break
            yield dn, raw

    return wrapper


def complete(dn: str, raw: RawEntry, fetch: Fetch) -> RawEntry:
    """``raw`` with each ranged attribute read to its last value and renamed to its plain name."""
    whole: RawEntry = {}
    for name, values in raw.items():
        match = _RANGE.match(name)
        if match is None:
            whole[name] = values
        else:
            whole[match["attr"]] = _read_rest(dn, match, list(values or ()), fetch)
    return whole


def _read_rest(dn: str, match: re.Match[str], values: list[bytes], fetch: Fetch) -> list[bytes]:
    """Ask for the following slices until the server marks one as the last."""
    attr, high = match["attr"], match["high"]
    width = len(values)
    while high != "*" and width:
        low = int(high) + 1
        answer = _slice(fetch(dn, f"{attr};range={low}-{low + width - 1}"), attr)
        if answer is None:
            break  # asked past the last value: nothing more to read
        got, got_low, high = answer
        if got_low != low:
            raise DirectoryError(f"{dn}: asked for {attr} values from {low}, the server sent them from {got_low}")
        values += got
        width = len(got)
    return values


def _slice(raw: RawEntry, attr: str) -> tuple[list[bytes], int, str] | None:
    """The values, first index and upper bound of the slice of ``attr`` in an answer; None when empty."""
    for name, values in raw.items():
        match = _RANGE.match(name)
        if match is not None and match["attr"].lower() == attr.lower():
            return (list(values), int(match["low"]), match["high"]) if values else None
    return None
