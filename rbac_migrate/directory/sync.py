"""Incremental reads: what changed in a few searches since the state a previous read recorded.

OpenLDAP with the syncprov overlay answers RFC 4533 Content Sync (refreshOnly from a stored
cookie) with the entries changed since and the identities of those deleted or moved out of a
search. Active Directory and Samba answer the DirSync control with the objects changed since a
stored cookie, tombstones included, when the bind account holds the right to replicate directory
changes; the changed objects are then read again as a full read reads them. Without that right, a
``uSNChanged`` query finds the entries changed since a recorded update number, and deletions show
as identities missing from a cheap listing of every objectGUID; the read says why DirSync was not
used. Anything else offers no incremental read, and the caller reads everything.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import DirectoryError
from . import Directory, decode_value, dirsync

SYNC_CONTROL = "1.3.6.1.4.1.4203.1.9.1.1"
# AD's state keeps both a DirSync cookie (when the server gave one) and an update number to fall back on.
RFC4533, USN, DIRSYNC = "rfc4533", "usn", "dirsync"
LABELS = {RFC4533: "RFC 4533 content sync", USN: "Active Directory uSNChanged", DIRSYNC: "Active Directory DirSync"}
GUID_TERMS = 200  # objectGUIDs per re-read search: far below AD's limit on filter size
# A refresh that returns only a cookie: an indexed look-up of an identity no entry has.
NOTHING = "(entryUUID=00000000-0000-0000-0000-000000000000)"


@dataclass(frozen=True)
class Search:
    """One of the searches a snapshot is made of."""

    name: str
    base: str
    filter: str
    attributes: tuple[str, ...]


@dataclass
class Changes:
    """Per search: entries added or changed, identities gone, or (``present``) every identity still there."""

    method: str
    entries: dict[str, list[tuple[str, dict[str, list[bytes]]]]] = field(default_factory=dict)
    deleted: dict[str, set[str]] = field(default_factory=dict)
    present: dict[str, set[str] | None] = field(default_factory=dict)
    state: dict = field(default_factory=dict)
    note: str = ""  # why a better path was not taken

    @property
    def label(self) -> str:
        return f"{LABELS[self.method]}; {self.note}" if self.note else LABELS[self.method]

    @property
    def changed(self) -> int:
        return sum(len(entries) for entries in self.entries.values())


def offered(directory: Directory) -> str | None:
    """The incremental read this server offers us, or None."""
    dse = directory.root_dse()
    if "forestfunctionality" in dse and "highestcommittedusn" in dse:
        return USN
    if SYNC_CONTROL in dse.get("supportedcontrol", []) and directory.sync_reader() is not None:
        return RFC4533
    return None


def start(directory: Directory, method: str, searches: Sequence[Search]) -> dict:
    """The state a later incremental read resumes from; taken before a full read, so nothing slips by."""
    if method == USN:
        state = {"method": USN, "usn": _highest_usn(directory)}
        return {**state, **_dirsync_start(directory, searches)[0]}
    reader = directory.sync_reader()
    cookies = {}
    for search in searches:
        result = reader.sync(search.base, NOTHING, ["1.1"], None)
        if result is None or not result.cookie:
            raise DirectoryError(f"content sync under {search.base} returned no cookie")
        cookies[search.name] = result.cookie
    return {"method": RFC4533, "cookies": cookies}


def read_changes(directory: Directory, state: dict, searches: Sequence[Search]) -> Changes | None:
    """What changed since ``state``; None when the server can no longer resume from it."""
    if state.get("method") == USN:
        return _ad_changes(directory, state, searches)
    if state.get("method") == RFC4533 and set(state.get("cookies", {})) >= {s.name for s in searches}:
        return _content_sync(directory, state["cookies"], searches)
    return None


def _content_sync(directory: Directory, cookies: dict[str, str], searches: Sequence[Search]) -> Changes | None:
    reader = directory.sync_reader()
    changes = Changes(RFC4533, state={"method": RFC4533, "cookies": {}})
    for search in searches:
        result = reader.sync(search.base, search.filter, search.attributes, cookies[search.name])
        if result is None:
            return None
        changes.entries[search.name] = result.entries
        changes.deleted[search.name] = result.deleted
        changes.present[search.name] = result.present if result.complete else None
        changes.state["cookies"][search.name] = result.cookie or cookies[search.name]
    return changes


def _highest_usn(directory: Directory) -> int:
    values = directory.root_dse().get("highestcommittedusn") or ["0"]
    return int(values[0])


def _ad_changes(directory: Directory, state: dict, searches: Sequence[Search]) -> Changes:
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
