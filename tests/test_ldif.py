"""LDIF per RFC 2849: hostile names go through the real ``ldapmodify -n`` and touch only what they name."""

from __future__ import annotations

import doctest
import re
import shutil
import subprocess
from io import StringIO
from pathlib import Path

import ldif as python_ldap_ldif
import pytest

import rbac_migrate.ldif as ldifmod
from rbac_migrate.changeset import ChangeSet, Edit, Ref, Unit
from rbac_migrate.ldif import change_record, comment, document, is_safe
from rbac_migrate.migration.plan import plan_ldif
from tests.support.skips import unavailable

BASE = "ou=grants,dc=example,dc=org"
EVIL = f"cn=evil,{BASE}"
HOSTILE = [
    f"cn=x\ndn: {EVIL}",  # a newline that would start a second record
    f"cn=x\r\ndn: {EVIL}",
    f" cn=lead,{BASE}",  # leading space, colon and '<' change the meaning of a text line
    f":cn=colon,{BASE}",
    "<file:///etc/passwd",
    f"cn=café,{BASE}",  # non-ASCII
    f"cn=trail,{BASE} ",  # a trailing space a text line would lose
    f"cn=cr\r,{BASE}",
    f"cn=bell\x07\x1b[2J,{BASE}",  # control characters, a terminal escape
    f"cn=ok,{BASE}",
]
ROLE_NAME = f"role-x\n\ndn: {EVIL}\nchangetype: modify\nadd: member\nmember: uid=mallory\n-\n"
HOSTILE_VALUES = [
    "uid=a,ou=people\n-\nreplace: member\nmember: uid=root",  # a newline that would add a modification
    " uid=lead",
    ":uid=colon",
    "<file:///etc/shadow",
    "uid=josé",
    "uid=trail ",
    "uid=cr\r",
    "",
]


def dry_run(tmp_path: Path, text: str) -> tuple[int, list[str]]:
    """ldapmodify's exit code with ``-n`` (no server contacted), and the DNs it would modify, in order."""
    binary = shutil.which("ldapmodify") or shutil.which("ldapmodify", path="/usr/bin:/usr/local/bin")
    if binary is None:
        unavailable("ldapmodify not found: apt-get install ldap-utils")
    path = tmp_path / "changes.ldif"
    path.write_text(text, encoding="utf-8")
    done = subprocess.run([binary, "-n", "-v", "-f", str(path)], capture_output=True, timeout=30)
    # Each entry ends with '!modifying entry "DN"' and a blank line; a DN may hold any byte.
    touched = re.findall(r'!modifying entry "(.*?)"\n\n', done.stdout.decode("utf-8"), re.DOTALL)
    return done.returncode, touched


def parsed(text: str) -> list[tuple[str, list]]:
    """The records as python-ldap's own LDIF parser reads them: (dn, [(op, attribute, [values])])."""
    parser = python_ldap_ldif.LDIFRecordList(StringIO(text), process_url_schemes=[])
    parser.parse_change_records()
    ops = {0: "add", 1: "delete"}
    return [
        (dn, [(ops[op], attr, [v.decode("utf-8") for v in values]) for op, attr, values in mods])
        for dn, mods, _controls in parser.all_modify_changes
    ]


def test_hostile_dns_touch_exactly_the_entries_they_name(tmp_path):
    rendered = [change_record(dn, [("add", "member", "uid=a,ou=people,dc=example,dc=org")]) for dn in HOSTILE]
    text = document(rendered, [f"plan for role-x\n\ndn: {EVIL}\nchangetype: delete", "tab\there"])
    assert dry_run(tmp_path, text) == (0, HOSTILE)
    assert all(line.isascii() and line.isprintable() for line in text.splitlines())


def test_hostile_values_arrive_byte_for_byte_as_one_value_each(tmp_path):
    groups = [f"cn=g{i},{BASE}" for i in range(len(HOSTILE_VALUES))]
    changes = [[("add", "member", value), ("delete", "member", value)] for value in HOSTILE_VALUES]
    text = document([change_record(dn, pair) for dn, pair in zip(groups, changes, strict=True)])
    assert dry_run(tmp_path, text) == (0, groups)
    assert parsed(text) == [
        (dn, [(op, attr, [value]) for op, attr, value in pair]) for dn, pair in zip(groups, changes, strict=True)
    ]


def test_the_dry_run_sees_an_injected_record(tmp_path):
    """The checks here can fail: a role name written raw, as plans once did, adds a record nobody planned."""
    raw = f"# rbac-migrate plan: 1 users onto {ROLE_NAME}\n" + change_record(
        f"cn=ok,{BASE}", [("add", "member", "uid=a")]
    )
    assert dry_run(tmp_path, raw) == (0, [EVIL, f"cn=ok,{BASE}"])


def test_comments_never_start_a_record(tmp_path):
    text = document([change_record(f"cn=ok,{BASE}", [("add", "member", "uid=a")])], [f"\n\ndn: {EVIL}\n"])
    assert dry_run(tmp_path, text) == (0, [f"cn=ok,{BASE}"])
    assert comment("role\u2028x\x1b[31m") == "# role\\u2028x\\x1b[31m"


@pytest.mark.parametrize(
    ("value", "safe"),
    [
        ("uid=a,ou=people", True),
        ("", True),
        (" a", False),
        (":a", False),
        ("<a", False),
        ("a ", False),
        ("a\nb", False),
        ("a\rb", False),
        ("a\0b", False),
        ("é", False),
        ("a\x7f", False),
        ("a:b<c d", True),  # only the first character is restricted
    ],
)
def test_safe_string_rules(value, safe):
    assert is_safe(value) is safe


def test_only_value_level_changes_with_real_attribute_names():
    with pytest.raises(ValueError, match="not a value-level change"):
        change_record(f"cn=ok,{BASE}", [("replace", "member", "uid=a")])
    with pytest.raises(ValueError, match="not an attribute name"):
        change_record(f"cn=ok,{BASE}", [("add", "member\nreplace: member", "uid=a")])
    with pytest.raises(ValueError, match="no change"):
        change_record(f"cn=ok,{BASE}", [])
    assert doctest.testmod(ldifmod).failed == 0


def test_plan_ldif_writes_hostile_names_safely(tmp_path):
    member = Ref(" uid=bob,ou=people\n-\nreplace: member", "uuid-bob", "bob")
    edits = [
        Edit("add", Ref(f"cn=role-x\ndn: {EVIL}", "uuid-role", "role-x"), member),
        Edit("delete", Ref(f"cn=fin,{BASE}", "uuid-fin", "fin"), member),
    ]
    changes = ChangeSet("migrate", f"1 user onto {ROLE_NAME}", {}, [Unit("bob", edits)])
    text = plan_ldif(changes, "member")
    assert dry_run(tmp_path, text) == (0, [f"cn=role-x\ndn: {EVIL}", f"cn=fin,{BASE}"])
    assert [mods for _dn, mods in parsed(text)] == [
        [("add", "member", [member.dn])],
        [("delete", "member", [member.dn])],
    ]
