"""Active Directory reads that have no OpenLDAP counterpart."""

from __future__ import annotations

from ..config import Settings

# An OR of this many terms stays far below AD's default limit on filter size.
FILTER_TERMS = 200


def relative_id(sid: bytes) -> int:
    """The last sub-authority of a binary SID: what ``primaryGroupID`` holds for a group."""
    return int.from_bytes(sid[-4:], "little")


def primary_group_members(directory, settings: Settings) -> list[tuple[str, str]]:
    """(account DN, group DN) for each account under user_base whose primary group is a managed group.

    AD never lists a primary group in ``member``, so snapshots and plans cannot see that membership
    and never change it; it can only be reported, for an administrator to move in AD itself.
    """
    groups: dict[int, str] = {}
    for base in (settings.grant_base, settings.role_base):
        for dn, raw in directory.search_raw(base, "(objectClass=group)", ["objectSid"]):
            sid = next((values[0] for name, values in raw.items() if name.lower() == "objectsid" and values), None)
            if sid:
                groups[relative_id(sid)] = dn
    found: list[tuple[str, str]] = []
    rids = sorted(groups)
    for start in range(0, len(rids), FILTER_TERMS):
        terms = "".join(f"(primaryGroupID={rid})" for rid in rids[start : start + FILTER_TERMS])
        for dn, attrs in directory.search(settings.user_base, f"(|{terms})", ["primaryGroupID"]):
            found.append((dn, groups[int(attrs["primarygroupid"][0])]))
    return found
