"""Promises 7, 10 and 11: a plan file edited by hand is refused with one line, and nothing is written.

Each case starts from a plan written by ``migrate plan`` for two safe candidates, edits it the way
someone might (or an attacker would), and applies it. The directory is read before and after by
tests/support/reader.py; the store must hold no batch. Every edited file is
refused twice: by the digest the store recorded when it wrote the plan, and, once an intruder
who can write to the store records the edited file too, by the guard rails and the rebuild behind it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from rbac_migrate.store import open_store
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
    return plan["units"][0]


def _respell(plan: dict, old: str, new: str) -> dict:
    """Every place the file names the DN ``old`` (intent, edits, subjects) now says ``new``."""
    text = json.dumps(plan)
    return json.loads(text.replace(json.dumps(old)[1:-1], json.dumps(new)[1:-1]))


def rename_protected(plan: dict, org) -> dict:
    plan["intent"]["users"][0]["name"] = "someone-else"
    _first(plan)["label"] = "someone-else"
    _first(plan)["subjects"][0]["user"]["name"] = "someone-else"
    return plan


def hex_escaped_protected_dn(plan: dict, org) -> dict:
    dn = plan["intent"]["users"][0]["dn"]
    rdn, rest = dn.split(",", 1)
    attr, value = rdn.split("=", 1)
    return _respell(plan, dn, f"{attr}=\\{ord(value[0]):02x}{value[1:]},{rest}")


def extra_add_with_gain(plan: dict, org) -> dict:
    unit = _first(plan)
    subject = unit["subjects"][0]
    held = {normalise_dn(g) for g in subject["before"]}
    grant = next(g for g in org.sample.groups if g.kind == "grant" and normalise_dn(g.dn) not in held)
    group = {"dn": grant.dn, "uuid": entry_uuid(org, grant.dn), "name": grant.cn}
    unit["edits"].append({"op": "add", "group": group, "member": dict(subject["user"])})
    subject["after"] = sorted([*subject["after"], normalise_dn(grant.dn)])
    return plan


def ghost_user(plan: dict, org) -> dict:
    dn = plan["intent"]["users"][0]["dn"]
    ghost = f"uid=ghost,{dn.split(',', 1)[1]}"
    plan = _respell(plan, dn, ghost)
    for ref in [plan["intent"]["users"][0], _first(plan)["subjects"][0]["user"]]:
        ref.update(uuid=None, name="ghost")
    for edit in _first(plan)["edits"]:
        edit["member"]["uuid"] = None
    return plan


def group_outside_bases(plan: dict, org) -> dict:
    member = dict(_first(plan)["subjects"][0]["user"])
    admins = {"dn": f"cn=admins,{org.sample.base_dn}", "uuid": None, "name": "admins"}
    _first(plan)["edits"].append({"op": "add", "group": admins, "member": member})
    return plan


def truncated(plan: dict, org) -> str:
    text = json.dumps(plan, indent=2)
    return text[: len(text) // 2]


def garbage(plan: dict, org) -> bytes:
    return bytes(range(256)) * 8


def wrong_types(plan: dict, org) -> dict:
    _first(plan)["edits"] = 5
    _first(plan)["subjects"] = "everything"
    return plan


def deeply_nested(plan: dict, org) -> str:
    head = '{"schema": "rbac-migrate/change-set", "version": 2, "kind": "migrate", "units": '
    return head + "[" * 100_000 + "]" * 100_000 + "}"


def unchanged(plan: dict, org) -> dict:
    return plan


EDITS = {
    "protected-account-renamed": Edit(rename_protected, fragments=("protected",), protect_first="uid"),
    "protected-dn-hex-escaped": Edit(hex_escaped_protected_dn, fragments=("protected",), protect_first="dn"),
    "extra-add-approved-as-gain": Edit(extra_add_with_gain),
    "null-uuid-for-missing-dn": Edit(ghost_user, fragments=("has no recorded identity",)),
    "group-outside-the-bases": Edit(group_outside_bases, fragments=("outside grant_base and role_base",)),
    "more-users-than-max-batch-size": Edit(unchanged, ("max_batch_size=1",), ("max_batch_size",)),
    "more-deletes-than-max-removals": Edit(unchanged, ("max_removals_per_run=3",), ("max_removals_per_run",)),
    "truncated-file": Edit(truncated, names_file=True),
    "binary-garbage": Edit(garbage, names_file=True),
    "wrong-types": Edit(wrong_types, names_file=True),
    "deeply-nested-json": Edit(deeply_nested, names_file=True),
}


def entry_uuid(org, dn: str) -> str:
    text = org.slapd.ldapsearch(dn, "(objectClass=*)", "entryUUID", scope="base")
    return next(line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("entryUUID: "))


@pytest.mark.parametrize("name", list(EDITS))
def test_edited_plan_is_refused_and_nothing_is_written(org, tmp_path, name):
    edit = EDITS[name]
    assert org.run("snapshot", "take").code == 0
    users = candidates(org, 2)
    path = tmp_path / "plan.json"
    plan_file(org, tmp_path, users)
    original = path.read_bytes()
    spoiled = edit.change(json.loads(original), org)
    if isinstance(spoiled, bytes):
        path.write_bytes(spoiled)
    else:
        path.write_text(spoiled if isinstance(spoiled, str) else json.dumps(spoiled, indent=2))
    protected = [f"protected_accounts={getattr(users[0], edit.protect_first)}"] if edit.protect_first else []
    settings = [*edit.settings, *protected]
    flags = [arg for setting in settings for arg in ("--set", setting)]
    reader = DirectoryReader.for_org(org)
    before = reader.members()
    if path.read_bytes() != original and not edit.names_file:
        first = org.run(*flags, "migrate", "apply", str(path), "--yes")
        assert_one_line_error(first, "is not a plan this store wrote, or it was edited since")
        # Someone who can write to the store as well records the edited file: the checks behind the digest hold.
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        open_store(org.store_url).record_plan(digest, "migrate", str(path), "intruder")
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
