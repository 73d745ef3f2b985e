"""LDIF change records (RFC 2849) that cannot be bent by the names they carry. Pure."""

from __future__ import annotations

import base64
import re

_SAFE = re.compile(r"[\x01-\x09\x0b\x0c\x0e-\x1f\x21-\x39\x3b\x3d-\x7f][\x01-\x09\x0b\x0c\x0e-\x7f]*\Z")


def is_safe(value: str) -> bool:
    """A SAFE-STRING of RFC 2849 with no trailing space."""
    return value == "" or (bool(_SAFE.match(value)) and not value.endswith(" "))


def line(attribute: str, value: str) -> str:
    if is_safe(value):
        return f"{attribute}: {value}"
    return f"{attribute}:: {base64.b64encode(value.encode('utf-8')).decode('ascii')}"


def change_record(dn: str, changes: list[tuple[str, str, str]]) -> str:
    """One value-level ``changetype: modify`` record: (op, attribute, value) each."""
    lines = [line("dn", dn), "changetype: modify"]
    for op, attribute, value in changes:
        lines += [f"{op}: {attribute}", line(attribute, value), "-"]
    return "\n".join(lines) + "\n"


def comment(text: str) -> str:
    """A comment line: control characters cannot end it and start a record."""
    return "# " + re.sub(r"[\x00-\x1f\x7f]", "?", text) + "\n"
