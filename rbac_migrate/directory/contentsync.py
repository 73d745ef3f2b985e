"""RFC 4533 Content Synchronization messages, encoded and decoded in BER.

A refreshOnly search carries the Sync Request control; the server answers with entries carrying
a Sync State control, Sync Info intermediate messages (a new cookie, the end of a phase, or a set
of identities deleted or present), and a Sync Done control on the final result. Only these few
definite-length structures occur, so a small reader serves where a general ASN.1 library would
cost more to load than the whole refresh.
"""

from __future__ import annotations

from dataclasses import dataclass, field

REQUEST = "1.3.6.1.4.1.4203.1.9.1.1"
STATE = "1.3.6.1.4.1.4203.1.9.1.2"
DONE = "1.3.6.1.4.1.4203.1.9.1.3"
INFO = "1.3.6.1.4.1.4203.1.9.1.4"

REFRESH_ONLY = 1
PRESENT, ADD, MODIFY, DELETE = range(4)  # syncStateValue.state

BOOLEAN, OCTET_STRING, ENUMERATED, SEQUENCE, SET = 0x01, 0x04, 0x0A, 0x30, 0x31
NEW_COOKIE, REFRESH_DELETE, REFRESH_PRESENT, SYNC_ID_SET = 0x80, 0xA1, 0xA2, 0xA3


class MalformedMessage(ValueError):
    """A sync message that does not follow RFC 4533's encoding."""


def _length(size: int) -> bytes:
    if size < 0x80:
        return bytes([size])
    body = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _length(len(body)) + body


def request_value(cookie: str | None) -> bytes:
    """syncRequestValue: refreshOnly, from ``cookie`` when there is one, no reload hint."""
    body = _tlv(ENUMERATED, bytes([REFRESH_ONLY]))
    if cookie:
        body += _tlv(OCTET_STRING, cookie.encode("utf-8"))
    return _tlv(SEQUENCE, body)


def _elements(data: bytes) -> list[tuple[int, bytes]]:
    """The (tag, contents) elements that follow one another in ``data``."""
    out, pos, end = [], 0, len(data)
    while pos < end:
        if pos + 2 > end:
            raise MalformedMessage("truncated element")
        tag, size = data[pos], data[pos + 1]
        pos += 2
        if size & 0x80:
            count = size & 0x7F
            if count == 0 or count > 4 or pos + count > end:
                raise MalformedMessage("unsupported length")
            size = int.from_bytes(data[pos : pos + count], "big")
            pos += count
        if pos + size > end:
            raise MalformedMessage("truncated element")
        out.append((tag, data[pos : pos + size]))
        pos += size
    return out


def _single(data: bytes, tag: int) -> bytes:
    elements = _elements(data)
    if len(elements) != 1 or elements[0][0] != tag:
        raise MalformedMessage(f"expected one element of tag {tag:#x}")
    return elements[0][1]


def _uuid(raw: bytes) -> str:
    if len(raw) != 16:
        raise MalformedMessage("an entryUUID is not 16 bytes")
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _cookie(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


@dataclass(frozen=True)
class State:
    """syncStateValue: what happened to the entry it comes with."""

    state: int
    uuid: str
    cookie: str | None


def state_value(value: bytes) -> State:
    parts = _elements(_single(value, SEQUENCE))
    if len(parts) < 2 or parts[0][0] != ENUMERATED or parts[1][0] != OCTET_STRING:
        raise MalformedMessage("syncStateValue needs a state and an entryUUID")
    cookie = _cookie(parts[2][1]) if len(parts) > 2 and parts[2][0] == OCTET_STRING else None
    return State(int.from_bytes(parts[0][1], "big"), _uuid(parts[1][1]), cookie)


@dataclass
class Info:
    """syncInfoValue, one of: a new cookie; the end of a refresh phase; a set of identities."""

    kind: int
    cookie: str | None = None
    flag: bool = False  # refreshDone for the end of a phase, refreshDeletes for a set of identities
    uuids: list[str] = field(default_factory=list)


def info_value(value: bytes) -> Info:
    elements = _elements(value)
    if len(elements) != 1:
        raise MalformedMessage("syncInfoValue holds one choice")
    kind, body = elements[0]
    if kind == NEW_COOKIE:
        return Info(kind, _cookie(body))
    if kind not in (REFRESH_DELETE, REFRESH_PRESENT, SYNC_ID_SET):
        raise MalformedMessage(f"unknown syncInfoValue choice {kind:#x}")
    info = Info(kind, flag=kind != SYNC_ID_SET)  # refreshDone defaults to TRUE, refreshDeletes to FALSE
    for tag, part in _elements(body):
        if tag == OCTET_STRING:
            info.cookie = _cookie(part)
        elif tag == BOOLEAN:
            info.flag = part != b"\x00"
        elif tag == SET and kind == SYNC_ID_SET:
            info.uuids = [_uuid(raw) for inner, raw in _elements(part) if inner == OCTET_STRING]
    return info


def done_value(value: bytes) -> tuple[str | None, bool]:
    """syncDoneValue: (cookie, refreshDeletes)."""
    cookie, deletes = None, False
    for tag, part in _elements(_single(value, SEQUENCE)):
        if tag == OCTET_STRING:
            cookie = _cookie(part)
        elif tag == BOOLEAN:
            deletes = part != b"\x00"
    return cookie, deletes
