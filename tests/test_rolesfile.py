"""The reviewable roles file: written owner-only, read back exactly, anything malformed refused in one line."""

from __future__ import annotations

import json
import stat

import pytest

from rbac_migrate.errors import RbacMigrateError
from rbac_migrate.mining.rolesfile import (
    FileException,
    FileRole,
    RolesFile,
    RolesFileError,
    dumps,
    load_roles_file,
    write_roles_file,
)

GRANTS = "ou=grants,ou=groups,dc=example,dc=org"
SAMPLE = RolesFile(
    method="jobs",
    snapshot=3,
    settings={"min_share": 0.75, "min_job_size": 4, "baseline_share": None},
    roles=(
        FileRole(
            name="role-finance-accountant",
            grants=(f"cn=fin-ledger-read,{GRANTS}", f"cn=fin-share,{GRANTS}"),
            description="Finance / Accountant: held by 2 of 3",
            stands_for=({"departmentNumber": "Finance", "title": "Accountant"},),
            holders=("ann", "bob"),
            members=3,
        ),
    ),
    exceptions=(FileException(f"cn=crm,{GRANTS}", "extra", "role-finance-accountant", ("bob",)),),
)


def document() -> dict:
    return json.loads(dumps(SAMPLE))


def test_written_owner_only_and_read_back_as_written(tmp_path):
    path = tmp_path / "roles.json"
    path.write_text("old")
    path.chmod(0o644)
    write_roles_file(path, SAMPLE)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_roles_file(path) == SAMPLE
    assert [p.name for p in tmp_path.iterdir()] == ["roles.json"]


def test_a_reviewer_may_drop_optional_evidence(tmp_path):
    doc = {"format": "rbac-migrate roles", "version": 1, "roles": [{"name": "role-x", "grants": [f"cn=a,{GRANTS}"]}]}
    path = tmp_path / "roles.json"
    path.write_text(json.dumps(doc))
    loaded = load_roles_file(path)
    assert loaded.roles == (FileRole("role-x", (f"cn=a,{GRANTS}",)),)
    assert loaded.method == "jobs" and loaded.exceptions == ()


def edited(change) -> bytes:
    doc = document()
    change(doc)
    return json.dumps(doc).encode()


MALFORMED = {
    "truncated": (dumps(SAMPLE)[:200].encode(), "ends early (truncated?)"),
    "binary": (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "binary content, not a roles file"),
    "latin-1": ('{"format": "r\xf4les"}'.encode("latin-1"), "not UTF-8 text"),
    "not json": (b"roles:\n  - role-x\n", "not valid JSON at line 1 column 1"),
    "deep nesting": (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    "a list": (b"[]", "expected an object, got a list"),
    "wrong format": (edited(lambda d: d.update(format="plan")), "format: expected 'rbac-migrate roles', got \"plan\""),
    "newer version": (edited(lambda d: d.update(version=2)), "version: version 2 is not one this rbac-migrate reads"),
    "version as text": (edited(lambda d: d.update(version="1")), 'version: expected a whole number, got "1"'),
    "no roles": (edited(lambda d: d.update(roles=[])), "roles: no roles listed: nothing to create"),
    "roles not a list": (edited(lambda d: d.update(roles={"a": 1})), "roles: expected a list, got an object"),
    "grant a number": (edited(lambda d: d["roles"][0]["grants"].append(5)), "roles[0].grants[2]: expected text, got 5"),
    "grant not a DN": (
        edited(lambda d: d["roles"][0]["grants"].append("fin-share")),
        'roles[0].grants[2]: expected a DN such as cn=NAME,ou=grants,..., got "fin-share"',
    ),
    "grant twice": (
        edited(lambda d: d["roles"][0]["grants"].append(f"CN=fin-share, {GRANTS}")),
        "roles[0].grants[2]: CN=fin-share, ou=grants,ou=groups,dc=example,dc=org is listed twice",
    ),
    "no grants": (edited(lambda d: d["roles"][0].update(grants=[])), "role role-finance-accountant lists no grants"),
    "bad name": (edited(lambda d: d["roles"][0].update(name="role x!")), "roles[0].name: role name 'role x!' is not"),
    "same name twice": (
        edited(lambda d: d["roles"].append({**d["roles"][0], "name": "ROLE-finance-accountant"})),
        "roles[1].name: ROLE-finance-accountant is also the name of roles[0]",
    ),
    "misspelt field": (edited(lambda d: d["roles"][0].update(grnts=[])), "roles[0]: unknown field 'grnts'"),
    "missing name": (edited(lambda d: d["roles"][0].pop("name")), "roles[0]: missing name"),
    "baseline as text": (
        edited(lambda d: d["roles"][0].update(baseline="no")),
        'roles[0].baseline: expected true or false, got "no"',
    ),
    "coverage disagrees": (
        edited(lambda d: d["roles"][0].update(coverage=9)),
        "roles[0].coverage: says 9 but 2 holders are listed",
    ),
    "stands for a list": (
        edited(lambda d: d["roles"][0].update(stands_for=[["Finance"]])),
        "roles[0].stands_for[0]: expected an object, got a list",
    ),
    "unknown reason": (
        edited(lambda d: d["exceptions"][0].update(why="because")),
        'exceptions[0].why: expected one of extra, missing, old-job, got "because"',
    ),
    "holders as text": (
        edited(lambda d: d["exceptions"][0].update(holders="bob")),
        'exceptions[0].holders: expected a list, got "bob"',
    ),
    "setting as text": (
        edited(lambda d: d["settings"].update(min_share="most")),
        'settings.min_share: expected a number or null, got "most"',
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_file_is_refused_in_one_line_naming_the_place(tmp_path, case):
    content, expected = MALFORMED[case]
    path = tmp_path / "roles.json"
    path.write_bytes(content)
    with pytest.raises(RolesFileError) as raised:
        load_roles_file(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: ") and expected in message, message
    assert "\n" not in message and len(message) < 200
    assert isinstance(raised.value, RbacMigrateError)


def test_an_unreadable_file_is_one_line_too(tmp_path):
    with pytest.raises(RolesFileError, match=r"cannot read .*nope.json: No such file or directory$"):
        load_roles_file(tmp_path / "nope.json")
    with pytest.raises(RolesFileError, match=r"cannot write .*: No such file or directory$"):
        write_roles_file(tmp_path / "missing-dir" / "roles.json", SAMPLE)
