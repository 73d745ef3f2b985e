"""Take a snapshot: read users and managed groups from the directory into plain data.

A full read searches every user and managed group. An incremental read asks the server what
changed since the state the latest snapshot recorded (RFC 4533 Content Sync on OpenLDAP,
``uSNChanged`` on Active Directory) and writes new versions of those entries only; their member
values are resolved exactly as a full read resolves them, so both give the same snapshot.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from operator import itemgetter
from typing import TYPE_CHECKING

from . import dn as dnutil
from .bulkwork import bulk_work
from .config import Settings
from .directory.values import BINARY_ATTRIBUTES
from .errors import ConfigError
from .kinds import DANGLING, EXTERNAL, GRANT, GROUP_FILTER, ROLE, USER
from .store.packing import Written, pack, unpack
from .store.snapshot_writer import DN_NORM, ENTITY, KIND, MEMBERS, Current, Head, Latest, Names, Update, attrs_text

if TYPE_CHECKING:
    from .changes import Change
    from .directory.sync import Changes, Search
    from .model import Snapshot
    from .store import Store

IDENTITY_TERMS = 200  # identities per search for the disabled state of changed users
EARLY_CHUNK = 10000  # users handed to a first snapshot's writer thread at a time
# Groups asked for per page in a full read (fewer where page_size says so): a page holds every
# member value of its groups until the last is read, a million for a thousand groups of a thousand.
GROUP_PAGE = 100
LOOSE = (DANGLING, EXTERNAL)  # entries known only from member values
KINDS = (USER, GRANT, ROLE, DANGLING, EXTERNAL)
Progress = Callable[[str, int], None]


def as_filter(text: str, name: str) -> str:
    """Accept 'objectClass=person' as well as '(objectClass=person)'; reject unbalanced ones."""
    text = text.strip()
    if not text.startswith("("):
        text = f"({text})"
    if text.count("(") != text.count(")"):
        raise ConfigError(f"{name} '{text}' is not a valid LDAP filter: unbalanced parentheses")
    return text


def identity_attribute(settings: Settings) -> str:
    """entryUUID on OpenLDAP, objectGUID on Active Directory: identity that survives renames."""
    return "objectGUID" if settings.flavour == "ad" else "entryUUID"


def searches(settings: Settings) -> list[Search]:
    """The searches a snapshot is made of: users, then role and grant groups, the more specific base first."""
    from .directory.sync import Search

    uuid = identity_attribute(settings)
    users = Search(
        USER,
        settings.user_base,
        as_filter(settings.user_filter, "user_filter"),
        (uuid, settings.id_attribute, *settings.peer_attributes),
    )
    groups = sorted(
        [(settings.role_base, ROLE), (settings.grant_base, GRANT)], key=lambda item: -len(dnutil.normalize(item[0]))
    )
    attributes = (uuid, "cn", settings.member_attribute)
    return [users, *(Search(kind, base, GROUP_FILTER, attributes) for base, kind in groups)]


class _Reader:
    """Turns raw search results into store rows, numbered by entity, with member values resolved."""

    def __init__(self, directory, settings: Settings, latest: Latest, disabled: Iterable[tuple]) -> None:
        self.directory, self.latest = directory, latest
        self.uuid_key = identity_attribute(settings).lower()
        self.id_key = settings.id_attribute.lower()
        self.peers = [(name, name.lower()) for name in settings.peer_attributes]
        self.member_key = settings.member_attribute.lower()
        self.keys_cache: dict = {}
        self.plans: dict[tuple, list] = {}
        self.attrs_json: dict[tuple, str | None] = {}  # peers share one JSON text
        self.disabled = {dnutil.normalize(dn) for dn, _ in disabled}
        self.rows: list[tuple] = []  # users (until handed to a writer thread), and entries member values point at
        self.groups: list[tuple[tuple, list[bytes]]] = []  # a group's row without members, its raw values
        self.group_rows: list[tuple] = []  # groups settled: members packed, or waiting in ``unmatched``
        # Groups with values to resolve: where the row sits, its entities so far, where they are
        # missing and the values there (not all its values: a few unknown ones may sit among thousands).
        self.unmatched: list[tuple[int, list, list[int], list[bytes]]] = []
        # Member values almost always repeat the DN byte for byte: match raw bytes first.
        self.by_raw: dict[bytes, int | None] = Names()
        self.by_norm: dict[str, int] = {}
        # An incremental read knows kept entries by their exact DN only; other spellings are looked up.
        self.kept_by_norm: Callable[[str], int | None] | None = None
        self.unknown = 0

    def add(self, kind: str, dn: str, norm: str, name: str, uuid: str | None, enabled: bool, attrs) -> tuple | None:
        """A new row, unless an entry with this DN came first."""
        if norm in self.by_norm:
            return None
        identity = uuid or f"dn:{norm}"
        entity = self.latest.entity(identity)
        self.by_raw[dn.encode("utf-8")] = entity
        self.by_norm[norm] = entity
        return (entity, identity, kind, dn, norm, name, name.lower(), uuid, enabled, attrs, None)

    def entities(self) -> set[int]:
        """The entities of the rows read so far, users and groups."""
        rows = (self.rows, self.group_rows, (row for row, _values in self.groups))
        return {row[ENTITY] for some in rows for row in some}

    def know(self, kept: Names) -> None:
        """Entries kept from the latest snapshot, {DN as UTF-8: entity}, for member values to
        resolve to; an entry read now wins over a kept one with its DN."""
        kept.update(self.by_raw)
        self.by_raw = kept

    def uuid_of(self, raw: dict[str, list[bytes]]) -> str | None:
        return self.directory.first_values(raw, self.keys_cache).get(self.uuid_key)

    def _user_values(self, raw: dict[str, list[bytes]]) -> list[str | None]:
        """(identity, name, *peer attributes) of a user entry, as text; None where absent.

        Entries of one search come with the same attribute names, so where each value sits is
        worked out once per set of names: this runs for every one of 100,000 users.
        """
        names = tuple(raw)
        plan = self.plans.get(names)
        if plan is None:
            last = {self.directory.attribute_key(name): name for name in names}  # as first_values: last wins
            keys = (self.uuid_key, self.id_key, *(key for _label, key in self.peers))
            plan = self.plans[names] = [(last.get(key), key, key in BINARY_ATTRIBUTES) for key in keys]
        decode = self.directory.decode_value
        return [
            None
            if name is None or not raw[name]
            else decode(key, raw[name][0])
            if binary
            else raw[name][0].decode("utf-8", "replace")
            for name, key, binary in plan
        ]

    def user(self, dn: str, raw: dict[str, list[bytes]]) -> None:
        uuid, ident, *peers = self._user_values(raw)
        peer_values = tuple(peers)
        attrs = self.attrs_json.get(peer_values, False)
        if attrs is False:
            pairs = {label: v for (label, _key), v in zip(self.peers, peer_values, strict=True) if v is not None}
            attrs = self.attrs_json[peer_values] = attrs_text(pairs, {})
        norm = dnutil.normalize(dn)
        row = self.add(USER, dn, norm, ident or dnutil.first_value(dn), uuid, norm not in self.disabled, attrs)
        if row is not None:
            self.rows.append(row)

    def group(self, kind: str, dn: str, raw: dict[str, list[bytes]]) -> None:
        values = self.directory.first_values(raw, self.keys_cache)
        name = values.get("cn") or dnutil.first_value(dn)
        row = self.add(kind, dn, dnutil.normalize(dn), name, values.get(self.uuid_key), True, None)
        if row is not None:
            members: list[bytes] = []
            for name, member_values in raw.items():
                if self.directory.attribute_key(name) == self.member_key:
                    members += _members(member_values)
            self.groups.append((row, members))

    def settle(self) -> None:
        """Pack the members of the groups read so far whose values all name entries already read,
        byte for byte: the common case, a million times over. The rest wait for ``resolved_groups``.

        A full read settles as it goes, so only a page of raw member values is held at a time.
        """
        by_raw, out = self.by_raw, self.group_rows
        for row, values in self.groups:
            # One C loop over the values (twice as fast as map and get); None where unknown.
            entities = itemgetter(*values)(by_raw) if len(values) > 1 else tuple(map(by_raw.__getitem__, values))
            try:
                out.append((*row[:MEMBERS], pack(entities)))
            except TypeError:  # values to resolve by their normalised DN, or to add as new entries
                missing = _positions(entities, None)
                self.unmatched.append((len(out), list(entities), missing, [values[at] for at in missing]))
                out.append(row)
        self.groups = []

    def resolved_groups(self) -> list[tuple]:
        """Group rows with their member values resolved; entries found only as member values join ``rows``."""
        self.settle()
        out, unmatched, by_raw = self.group_rows, self.unmatched, self.by_raw
        if unmatched:
            self._resolve(dict.fromkeys(value for *_found, values in unmatched for value in values))
            for i, entities, positions, values in unmatched:
                for at, value in zip(positions, values, strict=True):
                    entities[at] = by_raw[value]
                out[i] = (*out[i][:MEMBERS], pack(entities))
            self.unmatched = []
        return out

    def _resolve(self, values: Iterable[bytes]) -> None:
        """Resolve member values not known byte for byte: another spelling of a known DN, else an entry
        outside the managed ones, existing elsewhere (external) or not at all (dangling)."""
        new: dict[str, list[tuple[bytes, str]]] = {}  # normalised DN: its spellings, in order met
        for value in values:
            text = value.decode("utf-8", "replace")
            norm = dnutil.normalize(text)
            found = self.by_norm.get(norm)
            if found is None and self.kept_by_norm is not None:  # a kept entry spelt differently
                found = self.kept_by_norm(norm)
            if found is None:
                new.setdefault(norm, []).append((value, text))
            else:
                self.by_raw[value] = found
        existing = self.directory.resolving(spellings[0][1] for spellings in new.values())
        for norm, spellings in new.items():
            text = spellings[0][1]
            self.unknown += 1
            row = self.add(EXTERNAL if text in existing else DANGLING, text, norm, text, None, True, None)
            self.rows.append(row)
            for value, _text in spellings:
                self.by_raw[value] = row[ENTITY]


def _positions(items: tuple, wanted) -> list[int]:
    """Where ``wanted`` sits in ``items``, found by C loops: it is rare in a long tuple."""
    found: list[int] = []
    at = -1
    while True:
        try:
            at = items.index(wanted, at + 1)
        except ValueError:
            return found
        found.append(at)


def _members(values: list[bytes]) -> list[bytes]:
    """Member values without the empty DN, the placeholder that keeps a holderless groupOfNames
    valid (nor any value of only spaces). A DN starts with an attribute name, so when even the
    smallest value starts above the space character none is left out, and a million values need
    no look each."""
    if not values or min(values)[:1] > b" ":
        return values
    return [value for value in values if value.strip()]


def _disabled_users_filter(settings: Settings) -> str:
    """Users the disabled filter matches."""
    return (
        f"(&{as_filter(settings.user_filter, 'user_filter')}{as_filter(settings.disabled_filter, 'disabled_filter')})"
    )


def disabled_accounts(directory, settings: Settings) -> Iterator[tuple[str, dict]]:
    """The search for disabled users. Read it whole before asking anything else on the connection:
    slapd keeps the paging state of one search per connection."""
    return directory.search_raw(settings.user_base, _disabled_users_filter(settings), ["1.1"])


def disabled_among(directory, settings: Settings, users: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    """Which of these user entries the disabled filter matches now.

    Whether an account is disabled follows from its own attributes, so an account can only have
    become disabled or enabled if the server reports its entry changed: an incremental read asks
    about those few, by identity, instead of listing every disabled account again.
    """
    disabled = _disabled_users_filter(settings)
    key = identity_attribute(settings)
    by_identity, by_dn = [], []
    for dn, raw in users:
        values = [v for name, found in raw.items() if directory.attribute_key(name) == key.lower() for v in found]
        (by_identity if values else by_dn).append(values[0] if values else dn)
    found: list[tuple[str, dict]] = []
    for start in range(0, len(by_identity), IDENTITY_TERMS):
        terms = "".join(f"({key}={_escaped(value)})" for value in by_identity[start : start + IDENTITY_TERMS])
        found += directory.search_raw(settings.user_base, f"(&{disabled}(|{terms}))", ["1.1"], paged=False)
    for dn in by_dn:
        found += directory.search_raw(dn, disabled, ["1.1"], scope="base", paged=False)
    return found


def _escaped(value: bytes) -> str:
    """A raw value as an LDAP filter value: every byte escaped, which suits text and binary alike."""
    return "".join(f"\\{byte:02x}" for byte in value)


def take(directory, settings: Settings, latest: Latest, head: Head, report: Progress) -> Update:
    """Read users, grant groups and role groups; resolve every member value: every row of the snapshot."""
    latest.load_all()
    users, *groups = searches(settings)
    reader = _Reader(directory, settings, latest, disabled_accounts(directory, settings))
    # A first snapshot: users are inserted while the rest is read, and let go once handed over.
    early = latest.write_early(head)
    count = 0
    for dn, raw in directory.search_raw(users.base, users.filter, users.attributes):
        reader.user(dn, raw)
        count += 1
        if count % EARLY_CHUNK == 0:
            report("users", count)
            if early is not None:
                early.add(reader.rows)
                reader.rows = []
    report("users", count)
    if early is not None:
        early.add(reader.rows)
        reader.rows = []
        early.done()
    page = min(GROUP_PAGE, settings.page_size)
    for search in groups:
        before = len(reader.group_rows)
        pages = directory.search_raw(search.base, search.filter, search.attributes, page_size=page)
        for dn, raw in pages:
            reader.group(search.name, dn, raw)
            reader.settle()
        report(f"{search.name} groups", len(reader.group_rows) - before)
    group_rows = reader.resolved_groups()
    report("unresolved member values", reader.unknown)
    return Update(head, [*reader.rows, *group_rows], complete=True)


def _start(directory, settings: Settings, progress: Progress | None) -> Progress:
    settings.require("user_base", "grant_base", "role_base")
    for name in ("user_base", "grant_base", "role_base"):
        directory.check_base(name, getattr(settings, name))
    return progress or (lambda _stage, _count: None)


class _Incremental:
    """The rows of what changed since the latest snapshot, from a server's list of changes.

    Entries the server reports are read as a full read reads them; the rest of the latest
    snapshot is only consulted where these changes reach it (identities, DNs, members where
    needed), never rebuilt, so the work follows the change. An account's enabled flag follows
    from its own attributes, so only reported accounts can have changed it (``disabled_among``).
    """

    def __init__(self, directory, settings: Settings, changes: Changes, disabled: Iterable[tuple]) -> None:
        self.directory, self.settings, self.changes, self.disabled = directory, settings, changes, disabled
        self.gone: set[int] = set()

    def __call__(self, latest: Latest, head: Head) -> Update:
        reader = _Reader(self.directory, self.settings, latest, self.disabled)
        self.reader, self.latest = reader, latest
        searched = searches(self.settings)
        latest.lookup(self._identities())
        for search in searched:
            for dn, raw in self.changes.entries[search.name]:
                (reader.user if search.name == USER else partial(reader.group, search.name))(dn, raw)
        self.gone = self._gone()
        self._reread_holders(searched[1:])
        changed = reader.entities()
        loose = [c for c in latest.of_kinds(LOOSE) if c.entity not in changed and c.entity not in self.gone]
        replaced = {c.entity for c in loose if c.norm in reader.by_norm}
        loose = [c for c in loose if c.entity not in replaced]
        rows = self._reclassified(loose)
        if reader.groups:
            # A kept entry whose DN an entry read now has in another spelling is not kept by that DN.
            renamed = {c.entity for c in latest.of_kinds(KINDS, reader.by_norm)}
            skip = changed | self.gone | replaced | renamed
            reader.know(latest.names(skip))
            reader.kept_by_norm = partial(self._kept_by_norm, skip)
        group_rows = reader.resolved_groups()
        rows += self._rewritten(replaced, changed)
        closed = self.gone | replaced
        if group_rows or self.gone:
            closed |= self._unreferenced({c.entity for c in loose}, group_rows, changed)
        rows = [row for row in [*reader.rows, *rows, *group_rows] if row[ENTITY] not in closed]
        return Update(head, rows, closed)

    def _identities(self) -> set[str]:
        """The identities of the entries the server reported, to look up in one go."""
        found = set()
        for entries in self.changes.entries.values():
            for dn, raw in entries:
                found.add(self.reader.uuid_of(raw) or f"dn:{dnutil.normalize(dn)}")
        return found

    def _kept_by_norm(self, skip: set[int], norm: str) -> int | None:
        found = [c.entity for c in self.latest.of_kinds(KINDS, [norm]) if c.entity not in skip]
        return found[0] if found else None

    def _gone(self) -> set[int]:
        """Entities the server says are deleted, or no longer lists."""
        found = set()
        changes, latest = self.changes, self.latest
        for kind in changes.entries:
            deleted = changes.deleted.get(kind, set())
            latest.lookup(deleted)
            entities = (latest.by_identity.get(uuid) for uuid in deleted)
            found |= {e for e in entities if e in latest.entries and latest.entries[e].kind == kind}
            present = changes.present.get(kind)
            if present is not None:
                found |= {c.entity for c in latest.of_kinds((kind,)) if c.uuid not in present}
        return found - self.reader.entities()

    def _reread_holders(self, groups: list[Search]) -> None:
        """Read again the groups that held an entry now renamed or gone.

        The directory rewrites their member values itself (AD's linked attributes, slapd's refint),
        and neither Content Sync's session log nor uSNChanged reports those rewrites.
        """
        new_rows = [*self.reader.rows, *(row for row, _values in self.reader.groups)]
        entries = self.latest.current(row[ENTITY] for row in new_rows)
        moved = set(self.gone) | {
            row[ENTITY] for row in new_rows if row[ENTITY] in entries and entries[row[ENTITY]].norm != row[DN_NORM]
        }
        if not moved:
            return
        changed = self.reader.entities()
        holders = [g for g in self.latest.holders(moved) if g not in changed and g not in self.gone]
        for _group, cur in sorted(self.latest.current(holders).items()):
            search = next(s for s in groups if s.name == cur.kind)
            found = list(self.directory.search_raw(cur.dn, search.filter, search.attributes, scope="base", paged=False))
            self.changes.entries[cur.kind].extend(found)
            for dn, raw in found:
                self.reader.group(cur.kind, dn, raw)

    def _reclassified(self, loose: list[Current]) -> list[tuple]:
        """Entries member values point at outside the managed ones, looked at again: existing, or dangling."""
        existing = self.directory.resolving(cur.dn for cur in loose)
        changed = [cur.entity for cur in loose if (EXTERNAL if cur.dn in existing else DANGLING) != cur.kind]
        rows = self.latest.rows(changed).values()
        return [(*row[:KIND], DANGLING if row[KIND] == EXTERNAL else EXTERNAL, *row[KIND + 1 :]) for row in rows]

    def _rewritten(self, replaced: set[int], changed: set[int]) -> list[tuple]:
        """Kept groups holding a member value that now names an entry the server reported."""
        if not replaced:
            return []
        by_norm = self.reader.by_norm
        target = {e: by_norm[self.latest.entries[e].norm] for e in replaced}
        holding = self.latest.holders(replaced)
        rows = self.latest.rows(g for g in holding if g not in changed)
        return [(*row[:MEMBERS], pack([target.get(m, m) for m in holding[g]])) for g, row in rows.items()]

    def _unreferenced(self, candidates: set[int], group_rows: list[tuple], changed) -> set[int]:
        """Kept entries known only from member values that no group holds any longer."""
        if not candidates:
            return set()
        # Only an entry a changed or gone group held can have lost its last holder.
        before = self.latest.rows(changed | self.gone)
        at_risk = set()
        for row in before.values():
            if row[MEMBERS] is not None:
                at_risk |= candidates.intersection(unpack(row[MEMBERS]))
        for row in group_rows:  # usually none is at risk, and no group needs unpacking
            if not at_risk:
                break
            at_risk.difference_update(unpack(row[MEMBERS]))
        if not at_risk:
            return set()
        held = set()
        for group, values in self.latest.holders(at_risk).items():
            if group not in changed and group not in self.gone:
                held |= at_risk.intersection(values)
        return at_risk - held


# -- reading into the store ----------------------------------------------------------------------


@dataclass
class Taken:
    """What a read wrote: the store's account, how the directory was read, differences found by --full."""

    written: Written
    description: str
    differences: list[Change] | None = None


def _fingerprint(settings: Settings, target: str) -> str:
    """Which server and which searches a sync state belongs to: other settings need a full read."""
    fields = [target, settings.flavour, settings.disabled_filter, settings.member_attribute]
    fields += [f"{s.base}|{s.filter}|{','.join(s.attributes)}" for s in searches(settings)]
    return hashlib.sha256(json.dumps(fields).encode()).hexdigest()[:16]


def update(
    settings: Settings, store: Store, progress=None, prompt=None, full: bool = False, skip_unchanged: bool = False
) -> Taken:
    """Read the directory and write a snapshot: incrementally where the store has a state the server
    can resume from, else everything. Only versions that changed are written.

    With ``full`` everything is read, and compared with what an incremental read gives.
    """
    from .connections import reader_for
    from .directory import sync

    # The latest snapshot's sync state (False: there is none), and the store's side of an
    # incremental snapshot begun, to go on while the directory is read.
    stored = store.begin_refresh()
    with reader_for(settings, prompt) as directory, bulk_work():
        report = _start(directory, settings, progress)  # a missing base is named before any sync search fails
        method = sync.offered(directory)
        fingerprint = _fingerprint(settings, directory.target)
        state, reason = _previous_state(stored, method, fingerprint)
        incremental = None
        if state is not None:
            taken_at = datetime.now(timezone.utc)
            changes = sync.read_changes(directory, state, searches(settings))
            if changes is None:
                reason = "the server can no longer resume from the last snapshot's sync state"
            else:
                head = _head(directory, settings, taken_at, {**changes.state, "fingerprint": fingerprint})
                build = _Incremental(
                    directory, settings, changes, disabled_among(directory, settings, changes.entries[USER])
                )
                written, incremental = store.write_snapshot(lambda latest: build(latest, head), skip_unchanged, full)
                report("changed entries", changes.changed)
                text = f"incremental ({changes.label}): {changes.changed} entries changed"
                text += f", {len(build.gone)} gone" if build.gone else ""
                if not full:
                    return Taken(written, text)
                reason = "--full asked for"
        next_state = sync.start(directory, method, searches(settings)) if method else None
        head = _head(
            directory, settings, datetime.now(timezone.utc), next_state and {**next_state, "fingerprint": fingerprint}
        )
        written, _ = store.write_snapshot(
            lambda latest: take(directory, settings, latest, head, report), skip_unchanged
        )
    differences = None
    if incremental is not None:
        from .changes import diff  # --full only

        differences = diff(incremental, store.load_snapshot(written.snapshot_id))
    return Taken(written, f"full read: {reason}", differences)


def _head(directory, settings: Settings, taken_at: datetime, sync_state: dict | None) -> Head:
    bases = {k: getattr(settings, k) for k in ("user_base", "grant_base", "role_base")}
    return Head(taken_at, directory.target, settings.flavour, bases, sync_state)


def _previous_state(state: dict | None | bool, method: str | None, fingerprint: str) -> tuple[dict | None, str]:
    """The stored sync state to resume from (``state``: the latest snapshot's, False when there is
    none), or None and why not."""
    if state is False:
        return None, "first snapshot"
    if method is None:
        return None, "the server offers no incremental read (no syncprov overlay, not Active Directory)"
    if state is None:
        return None, "the last snapshot recorded no sync state"
    if state.get("fingerprint") != fingerprint or state.get("method") != method:
        return None, "the server or the searches changed since the last snapshot"
    return state, ""


def refresh(settings: Settings, store: Store, progress=None, prompt=None, always: bool = False) -> tuple[int, str]:
    """A fresh snapshot, read incrementally where possible: its id, with the one-line description
    of the read. Nothing is loaded: a command reads from the store what it needs.

    When nothing changed since the latest snapshot, that snapshot's id is returned and nothing is
    written, unless ``always``.
    """
    taken = update(settings, store, progress, prompt, skip_unchanged=not always)
    if taken.written.snapshot_id is None:
        latest = store.snapshot_info()
        return latest.id, f"{taken.description}; nothing changed since snapshot {latest.id}"
    return taken.written.snapshot_id, taken.description


def take_snapshot(settings: Settings, store: Store, progress=None, prompt=None) -> Snapshot:
    """Read the directory and store one snapshot (incrementally where the server offers it)."""
    return store.load_snapshot(refresh(settings, store, progress, prompt, always=True)[0])
