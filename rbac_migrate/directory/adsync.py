"""Incremental reads on Active Directory and Samba: DirSync, else uSNChanged and an identity listing."""

from __future__ import annotations

import base64
from collections.abc import Sequence

from . import dirsync
from .reads import Reads as Directory
from .sync import DIRSYNC, USN, Changes, Search
from .values import decode_value

GUID_TERMS = 200  # objectGUIDs per re-read search: far below AD's limit on filter size


def start(directory: Directory, searches: Sequence[Search]) -> dict:
    """The update number and DirSync cookie a later read resumes from."""
    state = {"method": USN, "usn": _highest_usn(directory)}
    return {**state, **_dirsync_start(directory, searches)[0]}


def _highest_usn(directory: Directory) -> int:
    values = directory.root_dse().get("highestcommittedusn") or ["0"]
    return int(values[0])


def changes(directory: Directory, state: dict, searches: Sequence[Search]) -> Changes:
    """DirSync from the stored cookie; else (no cookie, or refused now) uSNChanged, saying why."""
    # The number first: a change made while we read is read again next time, never missed.
    usn = _highest_usn(directory)
    refused = ""
    if state.get("dirsync"):
        try:
            found = _dirsync_read(directory, _cookie(state["dirsync"]), searches)
        except dirsync.Refused as why:
            refused = f"DirSync refused: {why}"
        else:
            return _reread(directory, {"method": USN, "usn": usn}, found, searches)
    changes = _usn_changes(directory, int(state["usn"]), searches, usn)
    started, why = _dirsync_start(directory, searches)
    changes.state.update(started)
    changes.note = refused or why or "DirSync from the next snapshot on"
    return changes


def _cookie(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise dirsync.Refused("the stored cookie is unreadable") from None


def _dirsync_base(directory: Directory, searches: Sequence[Search]) -> str:
    contexts = directory.root_dse().get("namingcontexts", [])
    base = dirsync.naming_context(contexts, [s.base for s in searches])
    if base is None:
        raise dirsync.Refused("no naming context holds every base")
    return base


def _dirsync_start(directory: Directory, searches: Sequence[Search]) -> tuple[dict, str]:
    """The DirSync part of a sync state, or nothing and the words that say why not."""
    try:
        cookie = dirsync.current_cookie(directory.conn, _dirsync_base(directory, searches))
    except dirsync.Refused as why:
        return {}, f"DirSync refused: {why}"
    return {"dirsync": base64.b64encode(cookie).decode("ascii")}, ""


def _dirsync_read(directory: Directory, cookie: bytes, searches: Sequence[Search]) -> dirsync.Found:
    attributes = [a for s in searches for a in s.attributes]
    filters = [s.filter for s in searches] + [f"({directory.settings.disabled_filter.strip()})"]
    watched = dirsync.watched(attributes, filters)
    return dirsync.changes(directory.conn, _dirsync_base(directory, searches), watched, cookie)


def _reread(directory: Directory, state: dict, found: dirsync.Found, searches: Sequence[Search]) -> Changes:
    """Each changed object read again as a full read reads it; one not found is gone from that search.

    DirSync brings only what changed (a new name, the member values added or removed), while a
    snapshot row needs the whole entry. A tombstone, an entry moved out of a base, or one that no
    longer matches a search's filter is not found under that base, which is what gone means.
    """
    changes = Changes(DIRSYNC, state={**state, "dirsync": base64.b64encode(found.cookie).decode("ascii")})
    guids = sorted(found.changed)
    every = {decode_value("objectguid", guid) for guid in guids}
    for search in searches:
        entries = []
        for start in range(0, len(guids), GUID_TERMS):
            terms = dirsync.guid_filter(guids[start : start + GUID_TERMS])
            entries += directory.search_raw(search.base, f"(&{search.filter}{terms})", search.attributes)
        changes.entries[search.name] = entries
        changes.deleted[search.name] = every - _identities(entries)
        changes.present[search.name] = None
    return changes


def _identities(entries) -> set[str]:
    """The objectGUIDs of raw search results, as text."""
    return {
        decode_value("objectguid", values[0])
        for _dn, raw in entries
        for name, values in raw.items()
        if name.lower() == "objectguid" and values
    }


def _usn_changes(directory: Directory, since: int, searches: Sequence[Search], usn: int) -> Changes:
    """Entries with a ``uSNChanged`` past ``since``; every identity still listed, to find deletions."""
    changes = Changes(USN, state={"method": USN, "usn": usn})
    for search in searches:
        newer = f"(&{search.filter}(uSNChanged>={since + 1}))"
        changes.entries[search.name] = list(directory.search_raw(search.base, newer, search.attributes))
        changes.deleted[search.name] = set()
        changes.present[search.name] = _identities(directory.search_raw(search.base, search.filter, ["objectGUID"]))
    return changes
