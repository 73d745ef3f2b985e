"""Active Directory's DirSync control: the objects changed since a cookie, tombstones included.

DirSync (LDAP_SERVER_DIRSYNC_OID) searches a whole naming context and returns, for each object
changed since the cookie, only the attributes that changed among those asked for: a renamed or
moved object brings ``name``, a deleted one arrives as its tombstone under Deleted Objects, and
with LDAP_DIRSYNC_INCREMENTAL_VALUES a group brings only the member values added or removed.
It needs the "Replicating Directory Changes" right on the naming context (Samba's administrator
holds it; a delegated service account usually does not), so a refusal is an answer, not an error.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ldap3.core import exceptions as lx

from .. import dn as dnutil

DIRSYNC_CONTROL = "1.2.840.113556.1.4.841"
SHOW_DELETED = "1.2.840.113556.1.4.417"
INCREMENTAL_VALUES = 0x80000000  # LDAP_DIRSYNC_INCREMENTAL_VALUES: member adds and removes, not whole lists
MAX_BYTES = 1 << 20
# A search that matches no object still hands back a cookie for "now": the start of a later read.
NO_OBJECT = "(objectGUID=" + "\\00" * 16 + ")"
# Attributes whose change means an entry moved, was renamed, or died, whatever a search reads.
ALWAYS = ("objectGUID", "name", "objectClass", "isDeleted")
_FILTER_ATTRIBUTE = re.compile(r"\(\s*([A-Za-z][\w.-]*)[^()=]*=")
_REASONS = {50: "insufficient rights", 12: "control or cookie not accepted", 53: "the server is unwilling"}


class Refused(Exception):
    """The server would not answer DirSync; the message says why in a few words."""


@dataclass
class Found:
    """Objects changed since the cookie (objectGUID bytes), and the cookie to resume from next time."""

    changed: set[bytes]
    cookie: bytes


def _ber_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _ber_integer(value: int) -> bytes:
    body = value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True)
    return b"\x02" + _ber_length(len(body)) + body


def control(cookie: bytes, flags: int = INCREMENTAL_VALUES) -> tuple[str, bool, bytes]:
    """DirSyncRequestValue ::= SEQUENCE { Flags INTEGER, MaxBytes INTEGER, Cookie OCTET STRING }.

    Flags is a 32-bit field sent as a signed INTEGER: 0x80000000 goes out as -2^31, as AD expects.
    """
    signed = flags - (1 << 32) if flags & 0x80000000 else flags
    body = _ber_integer(signed) + _ber_integer(MAX_BYTES) + b"\x04" + _ber_length(len(cookie)) + cookie
    return DIRSYNC_CONTROL, True, b"\x30" + _ber_length(len(body)) + body


def naming_context(contexts: Iterable[str], bases: Iterable[str]) -> str | None:
    """The naming context that holds every base (DirSync only searches from a context's root)."""
    bases = list(bases)
    holding = [context for context in contexts if all(dnutil.is_within(base, context) for base in bases)]
    return max(holding, key=len, default=None)


def watched(attributes: Iterable[str], filters: Iterable[str]) -> list[str]:
    """What DirSync must report changes of: what the searches read, and what their filters test."""
    names = {a.lower(): a for a in (*ALWAYS, *attributes)}
    for text in filters:
        for name in _FILTER_ATTRIBUTE.findall(text):
            names.setdefault(name.lower(), name)
    return sorted(names.values(), key=str.lower)


def changes(conn, base: str, attributes: list[str], cookie: bytes) -> Found:
    """Every object under ``base`` with a watched attribute changed since ``cookie``, page after page."""
    changed: set[bytes] = set()
    while True:
        entries, cookie, more = _page(conn, base, "(objectClass=*)", attributes, cookie)
        changed.update(entries)
        if not more:
            return Found(changed, cookie)


def current_cookie(conn, base: str) -> bytes:
    """A cookie for this moment, without reading the naming context."""
    _entries, cookie, _more = _page(conn, base, NO_OBJECT, ["objectGUID"], b"")
    return cookie


def _page(conn, base: str, search_filter: str, attributes: list[str], cookie: bytes) -> tuple[set[bytes], bytes, bool]:
    controls = [control(cookie), (SHOW_DELETED, False, None)]
    try:
        conn.search(base, search_filter, attributes=attributes, controls=controls)
    except lx.LDAPException as exc:
        raise Refused(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    result = conn.result or {}
    code = result.get("result")
    answer = (result.get("controls") or {}).get(DIRSYNC_CONTROL)
    if code != 0 or answer is None:
        raise Refused(_REASONS.get(code) or result.get("description") or "no DirSync answer")
    return set(_guids(conn.response or ())), answer["value"]["cookie"], bool(answer["value"]["more_results"])


def _guids(response: Iterable[dict]) -> Iterator[bytes]:
    for item in response:
        if item.get("type") != "searchResEntry":
            continue
        for name, values in item["raw_attributes"].items():
            if name.lower() == "objectguid" and values:
                yield values[0]


def guid_filter(guids: list[bytes]) -> str:
    """An OR of objectGUID equalities, each byte escaped."""
    terms = "".join("(objectGUID=" + "".join(f"\\{b:02x}" for b in guid) + ")" for guid in guids)
    return f"(|{terms})"
