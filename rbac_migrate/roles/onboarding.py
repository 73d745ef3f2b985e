"""Onboarding you can trust: proposals carried out as they were shown, and roles that fit the joiner's job."""

from __future__ import annotations

from .. import dn as dnutil
from ..store import Store
from . import live
from .commands import OnboardTarget, RoleCommandError, _Builder


def stored_target(store: Store, view, joiner: live.LiveUser, number: int) -> OnboardTarget:
    """Proposal N as 'joiner propose' last showed it; refused when a role it rests on changed since."""
    kept = store.roles.latest_proposals(joiner.dn)
    if kept is None:
        raise RoleCommandError(
            f"no proposals were shown for {joiner.name}: run 'rbac-migrate joiner propose {joiner.name}' first"
        )
    _kept_id, at, body = kept
    proposals = body.get("proposals", [])
    chosen = next((p for p in proposals if p.get("number") == number), None)
    if chosen is None:
        raise RoleCommandError(
            f"there is no proposal {number}: 'joiner propose' numbered them 1 to {len(proposals)} "
            f"at {at:%Y-%m-%d %H:%M}"
        )
    for role in chosen["roles"]:
        shown = {dnutil.normalize(g) for g in role["grants"]}
        now = set(view.access(role["dn"])) if view.directory.read_entry(role["dn"], ["1.1"]) is not None else None
        if now != shown:
            what = "is gone" if now is None else _difference(shown, now)
            raise RoleCommandError(
                f"the directory changed since proposal {number} was shown at {at:%Y-%m-%d %H:%M}: role {role['name']} "
                f"{what}; run 'rbac-migrate joiner propose {joiner.name}' again"
            )
    if chosen.get("new_role"):
        return OnboardTarget(new_role=chosen["new_role"], new_grants=tuple(chosen["grants"]))
    return OnboardTarget(roles=tuple(r["dn"] for r in chosen["roles"]), extras=tuple(chosen["extras"]))


def _difference(shown: set[str], now: set[str]) -> str:
    gained = sorted(dnutil.first_value(g) for g in now - shown)
    lost = sorted(dnutil.first_value(g) for g in shown - now)
    parts = ([f"now also gives {', '.join(gained)}"] if gained else []) + (
        [f"no longer gives {', '.join(lost)}"] if lost else []
    )
    return " and ".join(parts)


def check_peers(build: _Builder, joiner: live.LiveUser, role_dn: str) -> None:
    """Refuse a role whose holders share none of the joiner's peer attributes, saying why."""
    holders = [h for h in build.holders(role_dn) if live.kind_of(build.settings, h) is None]
    if not holders or not joiner.attrs:
        return
    held = {dnutil.normalize(h) for h in holders}
    if any(
        dnutil.normalize(u.dn) in held for u in live.users_with(build.directory, build.settings, joiner.attrs, True)
    ):
        return
    attrs = build.directory.read_entry(holders[0], [build.settings.id_attribute, *build.settings.peer_attributes])
    example = live.live_user(build.settings, holders[0], attrs or {}, True)
    theirs = " / ".join(example.attrs.values()) or "no peer attributes"
    raise RoleCommandError(
        f"{joiner.name} ({' / '.join(joiner.attrs.values())}) shares no peer attribute with the {len(holders)} "
        f"holders of {dnutil.first_value(role_dn)} (e.g. {example.name}: {theirs}): "
        "check it is the right role, then add --confirm-mismatch"
    )
