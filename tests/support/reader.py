"""An independent judge of the directory: who reaches which grant group, and every member value.

Tests of the safety promises must not judge rbac-migrate with rbac-migrate's own code: a bug in
its access graph or its DN handling would then hide itself. This module imports nothing from
rbac_migrate. It reads the groups under the grant and role bases over a raw ldap3 connection of
its own, normalises DNs with its own small parser and computes transitive membership itself.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

import ldap3

_HEX_PAIR = re.compile(r"[0-9a-fA-F]{2}")
GROUP_FILTER = "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=group))"


def _split_unescaped(text: str, separator: str) -> list[str]:
    """Split on a separator character that is not escaped with a backslash."""
    parts, current, i = [], [], 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    parts.append("".join(current))
    return parts


def _unescape(value: str) -> str:
    """RFC 4514 value escapes decoded: ``\\68`` and ``\\,`` both become the character they stand for."""
    out, raw, i = [], bytearray(), 0
    while i < len(value):
        if value[i] == "\\" and _HEX_PAIR.fullmatch(value[i + 1 : i + 3]):
            raw.append(int(value[i + 1 : i + 3], 16))
            i += 3
            continue
        if raw:
            out.append(raw.decode("utf-8", errors="replace"))
            raw = bytearray()
        if value[i] == "\\" and i + 1 < len(value):
            out.append(value[i + 1])
            i += 2
        else:
            out.append(value[i])
            i += 1
    if raw:
        out.append(raw.decode("utf-8", errors="replace"))
    return "".join(out)


def normalise_dn(dn: str) -> str:
    """One spelling per DN: escapes decoded, case folded, spaces around separators dropped."""
    rdns = []
    for rdn in _split_unescaped(dn.strip(), ","):
        avas = []
        for ava in _split_unescaped(rdn, "+"):
            attr, _, value = ava.partition("=")
            avas.append(f"{attr.strip().lower()}={_unescape(value.strip()).strip().lower()}")
        rdns.append("+".join(sorted(avas)))
    return ",".join(rdns)


def _within(dn: str, base: str) -> bool:
    return dn == base or dn.endswith("," + base)


@dataclass(frozen=True)
class DirectoryReader:
    """Reads one directory over its own connection each time it is asked."""

    url: str
    bind_dn: str
    password: str
    grant_base: str
    role_base: str
    user_base: str | None = None
    member_attribute: str = "member"

    @classmethod
    def for_org(cls, org) -> DirectoryReader:
        """The reader for a test's sample organisation (the ``org`` fixture), bound as the admin."""
        sample = org.sample
        return cls(
            org.slapd.url,
            org.slapd.admin_dn,
            org.slapd.admin_password,
            sample.grant_base,
            sample.role_base,
            sample.people_dn,
        )

    def _search(self, base: str, filterstr: str, attributes: list[str]) -> list[tuple[str, dict]]:
        server = ldap3.Server(self.url, get_info=ldap3.NONE, connect_timeout=10)
        conn = ldap3.Connection(
            server, self.bind_dn, self.password, auto_bind=True, receive_timeout=60, raise_exceptions=True
        )
        try:
            entries = conn.extend.standard.paged_search(
                base, filterstr, attributes=attributes, paged_size=500, generator=False
            )
            return [(e["dn"], e.get("raw_attributes") or {}) for e in entries if e.get("type") == "searchResEntry"]
        finally:
            conn.unbind()

    def members(self) -> dict[str, list[str]]:
        """Every managed group (normalised DN) with its exact member values as stored, sorted."""
        found = {}
        for base in (self.grant_base, self.role_base):
            for dn, attrs in self._search(base, GROUP_FILTER, [self.member_attribute]):
                values = next((v for k, v in attrs.items() if k.lower() == self.member_attribute.lower()), [])
                found[normalise_dn(dn)] = sorted(v.decode("utf-8") for v in values)
        return found

    def access(self) -> dict[str, frozenset[str]]:
        """Each user's effective grants: grant groups reached through any nesting, roles left out."""
        groups = self.members()
        containing = _containing(groups)
        users = {value for value in containing if value not in groups}
        if self.user_base:
            users |= {normalise_dn(dn) for dn, _ in self._search(self.user_base, "(objectClass=person)", ["1.1"])}
        return {user: self._grants(containing, user) for user in users}

    def grants_of(self, dn: str) -> frozenset[str]:
        """The grant groups any entry (a user, a role, a value naming nothing) reaches through nesting."""
        return self._grants(_containing(self.members()), normalise_dn(dn))

    def _grants(self, containing: dict[str, set[str]], start: str) -> frozenset[str]:
        grant_base, role_base = normalise_dn(self.grant_base), normalise_dn(self.role_base)
        seen: set[str] = set()
        frontier = list(containing.get(start, ()))
        while frontier:
            group = frontier.pop()
            if group not in seen:
                seen.add(group)
                frontier.extend(containing.get(group, ()))
        return frozenset(g for g in seen if _within(g, grant_base) and not _within(g, role_base))


def _containing(groups: dict[str, list[str]]) -> dict[str, set[str]]:
    """For every member value (normalised), the groups that list it; the empty DN names nobody."""
    containing: dict[str, set[str]] = defaultdict(set)
    for group, values in groups.items():
        for value in values:
            if value.strip():
                containing[normalise_dn(value)].add(group)
    return containing


def access_changes(before: dict[str, frozenset[str]], after: dict[str, frozenset[str]]) -> dict[str, str]:
    """Per user whose access differs, what was gained and lost: a readable assertion message."""
    changed = {}
    for user in sorted(set(before) | set(after)):
        old, new = before.get(user, frozenset()), after.get(user, frozenset())
        if old != new:
            changed[user] = f"gained {sorted(new - old)}, lost {sorted(old - new)}"
    return changed
