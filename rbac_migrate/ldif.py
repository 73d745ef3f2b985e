"""LDIF change records (RFC 2849) that say exactly what they mean, whatever the names hold. Pure.

A value or DN is written as text only when it is a SAFE-STRING of printable ASCII; anything
else (a newline, a carriage return, a leading space, colon or '<', a trailing space, a control
character, non-ASCII) is written base64 after '::', so no name can add a line, start a record
or point ldapmodify at a file. Comments are one line each, with control characters escaped.

>>> print(change_record("cn=fin-read,ou=grants,dc=example,dc=org",
...                     [("delete", "member", "uid=bob,ou=people,dc=example,dc=org")]), end="")
dn: cn=fin-read,ou=grants,dc=example,dc=org
changetype: modify
delete: member
member: uid=bob,ou=people,dc=example,dc=org
-
>>> attr_line("cn", "evil\\ndn: cn=admins")
'cn:: ZXZpbApkbjogY249YWRtaW5z'
>>> comment("plan for role-x\\ndn: cn=admins")
'# plan for role-x\\\\ndn: cn=admins'
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Sequence

OPERATIONS = ("add", "delete")  # value-level only: a replace would drop concurrent changes
# An attribute description: a name or an OID, with options (member;range=0-9 is not one).
_ATTRIBUTE = re.compile(r"(?:[A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)+)(?:;[A-Za-z0-9-]+)*")
_SAFE_INIT = frozenset(chr(c) for c in range(0x21, 0x7F)) - {":", "<"}
_SAFE = frozenset(chr(c) for c in range(0x20, 0x7F))


def is_safe(value: str) -> bool:
    """True when the value may be written as text: printable ASCII, not starting with a space,
    ':' or '<', not ending with a space (RFC 2849 SAFE-STRING, without control characters)."""
    if not value:
        return True
    return value[0] in _SAFE_INIT and value[-1] != " " and all(c in _SAFE for c in value)


def attr_line(attribute: str, value: str) -> str:
    """``attribute: value``, or ``attribute:: base64`` when the value is not safe as text."""
    if not _ATTRIBUTE.fullmatch(attribute):
        raise ValueError(f"'{attribute}' is not an attribute name")
    if is_safe(value):
        return f"{attribute}: {value}" if value else f"{attribute}:"
    return f"{attribute}:: {base64.b64encode(value.encode('utf-8')).decode('ascii')}"


def dn_line(dn: str) -> str:
    """``dn: …`` or ``dn:: base64``, by the same rule as values."""
    return attr_line("dn", dn)


def comment(text: str) -> str:
    """One comment line: newlines and other control characters are shown escaped, never obeyed."""
    return "# " + "".join(_visible(c) for c in text)


def _visible(char: str) -> str:
    if char == "\\":
        return "\\\\"
    if char.isprintable():
        return char
    return char.encode("unicode_escape").decode("ascii")  # \n, \r, \x1b, \u2028 ...


def change_record(dn: str, changes: Sequence[tuple[str, str, str]]) -> str:
    """A ``changetype: modify`` record adding or deleting single values: (op, attribute, value)."""
    if not changes:
        raise ValueError(f"no change for {dn!r}")
    lines = [dn_line(dn), "changetype: modify"]
    for op, attribute, value in changes:
        if op not in OPERATIONS:
            raise ValueError(f"'{op}' is not a value-level change (use add or delete)")
        lines += [f"{op}: {attribute}", attr_line(attribute, value), "-"]  # attr_line checks the name
    return "\n".join(lines) + "\n"


def document(records: Iterable[str], comments: Iterable[str] = ()) -> str:
    """A whole LDIF file: version line, comment lines, then the records separated by blank lines."""
    head = ["version: 1", *(comment(text) for text in comments)]
    return "\n".join(head) + "\n\n" + "\n".join(records)
