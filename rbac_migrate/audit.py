"""Hash-chained audit records: each record's hash covers its content and the previous hash.

Editing, deleting, inserting or reordering a record breaks the chain, and `verify` names where.
Cutting records from the end, or emptying the log, is caught by what lives outside the log: a
checkpoint file (the head as it was), and the batches in the store, each of which must keep its
audit records. With a key (``audit_key_file``) each new record's hash is an HMAC-SHA256, so
nobody without the key can rewrite the chain consistently; records written without a key keep
their plain SHA-256 and verify as before.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import json
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

GENESIS = "0" * 64
KEY_FIELD = "hmac_key"  # in a signed record's details: the id of the key that signed it


def operator() -> str:
    """Who is acting: RBAC_MIGRATE_OPERATOR, else the login name, with the host."""
    name = os.environ.get("RBAC_MIGRATE_OPERATOR")
    if not name:
        try:
            name = getpass.getuser()
        except (KeyError, OSError):
            name = f"uid {os.getuid()}"
    return f"{name}@{socket.gethostname()}"


@dataclass(frozen=True)
class AuditRecord:
    """One change, with what it looked like before and after."""

    id: int
    at: datetime
    operator: str
    action: str
    target: str
    ticket: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    prev_hash: str = GENESIS
    hash: str = ""

    def content(self) -> str:
        """The canonical text the hash covers."""
        at = self.at.astimezone(timezone.utc).isoformat(timespec="microseconds")
        body = [self.id, at, self.operator, self.action, self.target, self.ticket, self.details]
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)

    @property
    def signed_by(self) -> str | None:
        """The id of the key whose HMAC this record carries, or None for a plain SHA-256 record."""
        value = self.details.get(KEY_FIELD)
        return str(value) if value is not None else None

    def compute_hash(self, key: bytes | None = None) -> str:
        """SHA-256 of the previous hash and the content; an HMAC with ``key`` for a signed record."""
        data = (self.prev_hash + self.content()).encode("utf-8")
        if self.signed_by is None:
            return hashlib.sha256(data).hexdigest()
        if key is None:
            raise ValueError(f"record {self.id} is signed: its hash needs the audit key")
        return hmac.new(key, data, hashlib.sha256).hexdigest()


def key_id(key: bytes) -> str:
    """A short name for a key that reveals nothing about it: which key signed a record."""
    return hmac.new(key, b"rbac-migrate audit key id", hashlib.sha256).hexdigest()[:16]


def chain(record: AuditRecord, prev_id: int, prev_hash: str, key: bytes | None = None) -> AuditRecord:
    """The record placed after (prev_id, prev_hash), with its hash (an HMAC with ``key``) filled in."""
    details = {k: v for k, v in record.details.items() if k != KEY_FIELD}
    if key is not None:
        details[KEY_FIELD] = key_id(key)
    placed = AuditRecord(
        id=prev_id + 1,
        at=record.at,
        operator=record.operator,
        action=record.action,
        target=record.target,
        ticket=record.ticket,
        details=details,
        prev_hash=prev_hash,
    )
    return AuditRecord(**{**placed.__dict__, "hash": placed.compute_hash(key)})


@dataclass(frozen=True)
class Checkpoint:
    """The head of the log at one moment, kept outside the store: record id, hash and time."""

    record: int
    hash: str
    at: str | None = None

    def document(self, records: int, store: str, written_at: datetime) -> dict[str, Any]:
        return {
            "record": self.record,
            "hash": self.hash,
            "at": self.at,
            "records": records,
            "store": store,
            "written_at": written_at.astimezone(timezone.utc).isoformat(timespec="seconds"),
        }


def head_checkpoint(records: Sequence[AuditRecord]) -> Checkpoint:
    """The checkpoint of a log: its last record, or record 0 when it is empty."""
    if not records:
        return Checkpoint(0, GENESIS)
    last = records[-1]
    return Checkpoint(last.id, last.hash, last.at.astimezone(timezone.utc).isoformat(timespec="microseconds"))


def parse_checkpoint(text: str, source: str) -> Checkpoint:
    """A checkpoint file's content, or ValueError naming what is wrong with it."""
    try:
        data = json.loads(text)
        checkpoint = Checkpoint(int(data["record"]), str(data["hash"]), data.get("at"))
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{source} is not a checkpoint written by 'rbac-migrate audit checkpoint'") from None
    if checkpoint.record < 0 or len(checkpoint.hash) != 64:
        raise ValueError(f"{source} is not a checkpoint written by 'rbac-migrate audit checkpoint'")
    return checkpoint


def verify(
    records: Iterable[AuditRecord],
    head: tuple[int, str] | None = None,
    *,
    key: bytes | None = None,
    checkpoint: Checkpoint | None = None,
    batches: Iterable[int] = (),
) -> list[str]:
    """Problems found in the chain, in order; an empty list means intact.

    ``head`` is the store's own note of the last record; ``checkpoint`` one kept outside the
    store; ``batches`` the ids of the store's batches, each of which must have an audit record;
    ``key`` checks the HMAC of signed records.
    """
    problems: list[str] = []
    records = list(records)
    expected_id, expected_prev = 1, GENESIS
    unchecked: list[int] = []  # signed records that cannot be checked without the key
    signed_seen = False
    for record in records:
        if record.id != expected_id:
            problems.append(f"record {record.id}: expected record {expected_id} here (deleted, inserted or reordered)")
        if record.prev_hash != expected_prev:
            problems.append(f"record {record.id}: does not follow the record before it")
        problems += _check_hash(record, key, signed_seen, unchecked)
        signed_seen = signed_seen or record.signed_by is not None
        expected_id, expected_prev = record.id + 1, record.hash
    if unchecked:
        problems.append(f"records {_ranges(unchecked)} are signed: set audit_key_file to check them")
    if key is not None and records and not signed_seen:
        problems.append(
            f"no record is signed with the key in audit_key_file: the log was rewritten without it, "
            f"or nothing was recorded since the key was set ({len(records)} unsigned records)"
        )
    if head is not None and head != (expected_id - 1, expected_prev):
        problems.append(
            f"the log ends at record {expected_id - 1} but {head[0]} were written (records removed at the end)"
        )
    if checkpoint is not None:
        problems += _check_checkpoint(records, checkpoint)
    problems += _check_batches(records, batches)
    return problems


def _check_hash(record: AuditRecord, key: bytes | None, signed_seen: bool, unchecked: list[int]) -> list[str]:
    if record.signed_by is None:
        if key is not None and signed_seen:
            return [f"record {record.id}: not signed with the audit key though earlier records are (rewritten)"]
        ok = record.compute_hash() == record.hash
    elif key is None:
        unchecked.append(record.id)
        return []
    elif record.signed_by != key_id(key):
        return [f"record {record.id}: signed with another key ({record.signed_by}), not the one in audit_key_file"]
    else:
        ok = hmac.compare_digest(record.compute_hash(key), record.hash)
    return [] if ok else [f"record {record.id}: content does not match its hash (edited)"]


def _check_checkpoint(records: list[AuditRecord], checkpoint: Checkpoint) -> list[str]:
    if checkpoint.record == 0:
        return []
    found = next((r for r in records if r.id == checkpoint.record), None)
    if found is None:
        return [f"the checkpoint's head, record {checkpoint.record}, is no longer in the log (records removed)"]
    if found.hash != checkpoint.hash:
        return [f"record {checkpoint.record} no longer has the checkpoint's hash (the log was rewritten)"]
    return []


def _check_batches(records: list[AuditRecord], batches: Iterable[int]) -> list[str]:
    batches = sorted(set(batches))
    if not batches:
        return []
    if not records:
        held = f"batch {batches[0]}" if len(batches) == 1 else f"{len(batches)} batches"
        return [f"the log is empty but the store holds {held} (records removed)"]
    audited = {r.details.get("batch") for r in records}
    missing = [b for b in batches if b not in audited]
    if not missing:
        return []
    which = f"batch {missing[0]} has" if len(missing) == 1 else f"batches {_ranges(missing)} have"
    return [f"{which} no audit record (records removed)"]


def _ranges(numbers: list[int]) -> str:
    """'3-5, 9' for [3, 4, 5, 9]."""
    spans: list[list[int]] = []
    for number in numbers:
        if spans and number == spans[-1][1] + 1:
            spans[-1][1] = number
        else:
            spans.append([number, number])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def new_record(action: str, target: str, ticket: str | None = None, **details: Any) -> AuditRecord:
    """An unplaced record stamped now, by the current operator."""
    return AuditRecord(
        id=0,
        at=datetime.now(timezone.utc),
        operator=operator(),
        action=action,
        target=target,
        ticket=ticket,
        details=details,
    )
