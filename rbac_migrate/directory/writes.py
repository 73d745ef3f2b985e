"""Writes: value-level member changes, entries, compares and RFC 5805 transactions.

Only single values are ever added or deleted, never a whole attribute replaced: a replace would
silently drop what someone else changed meanwhile, and value-level changes come with a free
precondition check (deleting an absent value fails with 16, adding a present one with 20).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import ldap3
from ldap3.core import exceptions as lx

from ..errors import DirectoryError

TXN_START = "1.3.6.1.1.21.1"
TXN_SPEC_CONTROL = "1.3.6.1.1.21.2"
TXN_END = "1.3.6.1.1.21.3"
NO_SUCH_OBJECT = 32
NO_SUCH_ATTRIBUTE = 16
OBJECT_CLASS_VIOLATION = 65  # e.g. the last member value of a groupOfNames deleted
ALREADY_EXISTS = 20
ADD, DELETE = "add", "delete"


@dataclass(frozen=True)
class MemberChange:
    """Add or delete one value of a group's member attribute."""

    op: str  # "add" | "delete"
    group_dn: str
    value: str


class WriteError(DirectoryError):
    """A write was refused; ``code`` is the LDAP result code."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code


class ConnectionLost(DirectoryError):
    """The connection dropped mid-operation: the outcome of the last write is unknown."""


def _ber_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def txn_end_request(identifier: bytes, commit: bool) -> bytes:
    """BER for TxnEndReq ::= SEQUENCE { commit BOOLEAN DEFAULT TRUE, identifier OCTET STRING }."""
    flag = b"" if commit else b"\x01\x01\x00"
    body = flag + b"\x04" + _ber_length(len(identifier)) + identifier
    return b"\x30" + _ber_length(len(body)) + body


class Writer:
    """Write operations over a bound ldap3 connection (from ``Directory.writer()``)."""

    def __init__(self, conn: ldap3.Connection, target: str, member_attribute: str):
        self.conn = conn
        self.target = target
        self.member_attribute = member_attribute
        self._txn: bytes | None = None

    def _send(self, what: str, func, *args, **kwargs) -> dict:
        try:
            func(*args, **kwargs)
        except (lx.LDAPSocketReceiveError, lx.LDAPSocketSendError, lx.LDAPSessionTerminatedByServerError) as exc:
            raise ConnectionLost(f"{what}: connection to {self.target} lost ({exc})") from None
        except lx.LDAPResponseTimeoutError:
            raise ConnectionLost(f"{what}: {self.target} did not answer in time") from None
        except lx.LDAPException as exc:
            raise DirectoryError(f"{what}: {exc}") from None
        result = self.conn.result or {}
        if result.get("result") is None and self.conn.closed:
            raise ConnectionLost(f"{what}: connection to {self.target} lost")
        return result

    def _controls(self) -> list | None:
        return [(TXN_SPEC_CONTROL, True, self._txn)] if self._txn is not None else None

    def change_members(self, group_dn: str, changes: list[MemberChange]) -> None:
        """Apply value-level changes to one group in one atomic modify."""
        ops = {}
        for change in changes:
            kind = ldap3.MODIFY_ADD if change.op == ADD else ldap3.MODIFY_DELETE
            ops.setdefault(self.member_attribute, []).append((kind, [change.value]))
        what = f"modify {group_dn}"
        result = self._send(what, self.conn.modify, group_dn, ops, controls=self._controls())
        code = result.get("result")
        if code != 0:
            raise WriteError(f"{what} refused: {result.get('description')} {result.get('message', '')}".strip(), code)

    def has_member(self, group_dn: str, value: str) -> bool | None:
        """Whether the group holds the value now; None when the group does not exist."""
        what = f"compare {group_dn}"
        self._send(what, self.conn.compare, group_dn, self.member_attribute, value)
        code = (self.conn.result or {}).get("result")
        if code == 6:  # compareTrue
            return True
        if code in (5, NO_SUCH_ATTRIBUTE):  # compareFalse, or no member attribute at all
            return False
        if code == NO_SUCH_OBJECT:
            return None
        raise DirectoryError(f"{what} failed: {(self.conn.result or {}).get('description')}")

    def add_entry(self, dn: str, object_classes: list[str], attributes: dict[str, list[str]]) -> None:
        result = self._send(f"add {dn}", self.conn.add, dn, object_classes, attributes, controls=self._controls())
        if result.get("result") != 0:
            raise WriteError(f"add {dn} refused: {result.get('description')}", result.get("result"))

    def delete_entry(self, dn: str) -> None:
        result = self._send(f"delete {dn}", self.conn.delete, dn, controls=self._controls())
        if result.get("result") != 0:
            raise WriteError(f"delete {dn} refused: {result.get('description')}", result.get("result"))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """An RFC 5805 transaction: every write inside commits together at the end, or none does."""
        result = self._send("start transaction", self.conn.extended, TXN_START)
        if result.get("result") != 0:
            raise WriteError(f"{self.target} refused to start a transaction: {result.get('description')}")
        # slapd allows one transaction per connection and hands back an empty identifier.
        self._txn = result.get("responseValue") or b""
        try:
            yield
        except BaseException:
            identifier, self._txn = self._txn, None
            try:
                self._send(
                    "abort transaction", self.conn.extended, TXN_END, txn_end_request(identifier, False), no_encode=True
                )
            except DirectoryError:
                pass  # the server drops an unfinished transaction with the connection anyway
            raise
        identifier, self._txn = self._txn, None
        result = self._send(
            "commit transaction", self.conn.extended, TXN_END, txn_end_request(identifier, True), no_encode=True
        )
        if result.get("result") != 0:
            raise WriteError(
                f"transaction on {self.target} was not committed: {result.get('description')} "
                f"{result.get('message', '')}".strip(),
                result.get("result"),
            )
