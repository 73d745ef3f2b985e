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

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import DirectoryError

if TYPE_CHECKING:
    from .reads import Reads as Directory

SYNC_CONTROL = "1.3.6.1.4.1.4203.1.9.1.1"
# AD's state keeps both a DirSync cookie (when the server gave one) and an update number to fall back on.
RFC4533, USN, DIRSYNC = "rfc4533", "usn", "dirsync"
LABELS = {RFC4533: "RFC 4533 content sync", USN: "Active Directory uSNChanged", DIRSYNC: "Active Directory DirSync"}
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
        from . import adsync  # Active Directory's reads load ldap3 (DirSync) only when they run

        return adsync.start(directory, searches)
    results = directory.sync_reader().sync([(search.base, NOTHING, ["1.1"], None) for search in searches]) or []
    cookies = {search.name: result.cookie for search, result in zip(searches, results, strict=False)}
    for search in searches:
        if not cookies.get(search.name):
            raise DirectoryError(f"content sync under {search.base} returned no cookie")
    return {"method": RFC4533, "cookies": cookies}


def read_changes(directory: Directory, state: dict, searches: Sequence[Search]) -> Changes | None:
    """What changed since ``state``; None when the server can no longer resume from it."""
    if state.get("method") == USN:
        from . import adsync

        return adsync.changes(directory, state, searches)
    if state.get("method") == RFC4533 and set(state.get("cookies", {})) >= {s.name for s in searches}:
        return _content_sync(directory, state["cookies"], searches)
    return None


def _content_sync(directory: Directory, cookies: dict[str, str], searches: Sequence[Search]) -> Changes | None:
    requests = [(search.base, search.filter, search.attributes, cookies[search.name]) for search in searches]
    results = directory.sync_reader().sync(requests)
    if results is None:
        return None
    changes = Changes(RFC4533, state={"method": RFC4533, "cookies": {}})
    for search, result in zip(searches, results, strict=True):
        changes.entries[search.name] = result.entries
        changes.deleted[search.name] = result.deleted
        changes.present[search.name] = result.present if result.complete else None
        changes.state["cookies"][search.name] = result.cookie or cookies[search.name]
    return changes
