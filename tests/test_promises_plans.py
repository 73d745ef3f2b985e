"""Promises 7, 10 and 11: a plan file edited by hand is refused with one line, and nothing is written.

Each case starts from a plan written by ``migrate plan`` for two safe candidates, edits it the way
someone might (or an attacker would), and applies it. The directory is read before and after by
tests/support/reader.py; the store must hold no batch. Cases the current engine lets through are
marked ``xfail(strict=True)``: they start passing, and fail as XPASS, when the engine recomputes
every plan against the live directory.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.support.cli import assert_one_line_error
from tests.support.reader import DirectoryReader, normalise_dn
from tests.test_migration import ROLE, candidates, plan_file


@dataclass
class Edit:
    """How to spoil the plan, the settings apply runs with, and words the error line must hold."""

    change: Callable[[dict, object], dict | str | bytes]
    settings: tuple[str, ...] = ()
    fragments: tuple[str, ...] = ()
    protect_first: str = ""  # protected_accounts names the plan's first user: "uid" (its id) or "dn"
    names_file: bool = False  # the file cannot be read as a plan: the error names it


def _first(plan: dict) -> dict:
    return plan["users"][0]


def rename_protected(plan: dict, org) -> dict:
    _first(plan)["name"] = "someone-else"
    return plan


def hex_escaped_protected_dn(plan: dict, org) -> dict:
    user = _first(plan)
    rdn, rest = user["dn"].split(",", 1)
    attr, value = rdn.split("=", 1)
    user["dn"] = f"{attr}=\\{ord(value[0]):02x}{value[1:]},{rest}"
    return plan


def extra_add_with_gain(plan: dict, org) -> dict:
    user = _first(plan)
    held = {normalise_dn(g) for g in user["before"]}
    grant = next(g for g in org.sample.groups if g.kind == "grant" and normalise_dn(g.dn) not in held)
    user["adds"].append({"group": grant.cn, "group_dn": grant.dn, "group_uuid": entry_uuid(org, grant.dn)})
    user["gain"] = sorted([*user.get("gain", []), normalise_dn(grant.dn)])
    return plan


def ghost_user(plan: dict, org) -> dict:
    user = _first(plan)
    rest = user["dn"].split(",", 1)[1]
    role_grants = DirectoryReader.for_org(org).grants_of(plan["role"]["dn"])
    # Nobody holds the ghost's access now; the role's grants are "approved" so verify finds them all.
    user.update(name="ghost", dn=f"uid=ghost,{rest}", uuid=None, deletes=[], kept=[], before=[])
    user["gain"] = sorted(role_grants)
    return plan


def group_outside_bases(plan: dict, org) -> dict:
    _first(plan)["adds"].append({"group": "admins", "group_dn": f"cn=admins,{org.sample.base_dn}", "group_uuid": None})
    return plan


def truncated(plan: dict, org) -> str:
    text = json.dumps(plan, indent=2)
    return text[: len(text) // 2]


def garbage(plan: dict, org) -> bytes:
    return bytes(range(256)) * 8


def wrong_types(plan: dict, org) -> dict:
    _first(plan)["adds"] = 5
    _first(plan)["deletes"] = "everything"
    return plan


def deeply_nested(plan: dict, org) -> str:
    return '{"version": 1, "role": {}, "users": ' + "[" * 100_000 + "]" * 100_000 + "}"


def unchanged(plan: dict, org) -> dict:
    return plan


EDITS = {
    "protected-account-renamed": Edit(rename_protected, fragments=("protected",), protect_first="uid"),
    "protected-dn-hex-escaped": Edit(hex_escaped_protected_dn, fragments=("protected",), protect_first="dn"),
    "extra-add-approved-as-gain": Edit(extra_add_with_gain),
    "null-uuid-for-missing-dn": Edit(ghost_user),
    "group-outside-the-bases": Edit(group_outside_bases, fragments=("outside",)),
    "more-users-than-max-batch-size": Edit(unchanged, ("max_batch_size=1",), ("max_batch_size",)),
    "more-deletes-than-max-removals": Edit(unchanged, ("max_removals_per_run=3",), ("max_removals_per_run",)),
    "truncated-file": Edit(truncated, names_file=True),
    "binary-garbage": Edit(garbage, names_file=True),
    "wrong-types": Edit(wrong_types, names_file=True),
    "deeply-nested-json": Edit(deeply_nested, names_file=True),
}

# Let through by the engine as it is today; the marks go when apply recomputes every plan.
TODAY = {
    "protected-dn-hex-escaped": "a hex-escaped spelling of a protected DN is not recognised as that account",
    "protected-account-renamed": "the protected check compares the plan's own name, not the live account's id",
    "extra-add-approved-as-gain": "apply writes the plan's adds as given instead of recomputing them from the role",
    "null-uuid-for-missing-dn": "a null uuid matches an entry that does not exist, and its member value is written",
    "binary-garbage": "a plan file that is not UTF-8 ends in 'unexpected UnicodeDecodeError'",
    "wrong-types": "a plan with values of the wrong type ends in 'unexpected TypeError'",
    "deeply-nested-json": "deeply nested JSON ends in 'unexpected RecursionError'",
}


def entry_uuid(org, dn: str) -> str:
    text = org.slapd.ldapsearch(dn, "(objectClass=*)", "entryUUID", scope="base")
    return next(line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("entryUUID: "))


def _case(name: str):
    marks = [pytest.mark.xfail(strict=True, reason=TODAY[name])] if name in TODAY else []
    return pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", [_case(name) for name in EDITS])
def test_edited_plan_is_refused_and_nothing_is_written(org, tmp_path, name):
    edit = EDITS[name]
    assert org.run("snapshot", "take").code == 0
    users = candidates(org, 2)
    path = tmp_path / "plan.json"
    plan_file(org, tmp_path, users)
    spoiled = edit.change(json.loads(path.read_text()), org)
    if isinstance(spoiled, bytes):
        path.write_bytes(spoiled)
    else:
        path.write_text(spoiled if isinstance(spoiled, str) else json.dumps(spoiled, indent=2))
    protected = [f"protected_accounts={getattr(users[0], edit.protect_first)}"] if edit.protect_first else []
    settings = [*edit.settings, *protected]
    flags = [arg for setting in settings for arg in ("--set", setting)]
    reader = DirectoryReader.for_org(org)
    before = reader.members()
    result = org.run(*flags, "migrate", "apply", str(path), "--yes")
    after = reader.members()
    assert sorted(g for g in {*before, *after} if before.get(g) != after.get(g)) == []  # nothing written
    assert json.loads(org.run("batches", "list", "--format", "json").out) == []
    line = assert_one_line_error(result, *edit.fragments, *([str(path)] if edit.names_file else []))
    assert "unexpected" not in line and "--debug" not in line, line  # anticipated, not the catch-all


def test_the_unedited_plan_goes_through(org, tmp_path):
    """The baseline the edits spoil: without them, the same plan applies."""
    assert org.run("snapshot", "take").code == 0
    result = org.run("migrate", "apply", plan_file(org, tmp_path, candidates(org, 2)), "--yes")
    assert result.code == 0, result.err
    role = json.loads(org.run("batches", "list", "--format", "json").out)[0]["role"]
    assert normalise_dn(role).startswith(f"cn={ROLE}")
