"""audit log and audit verify on real SQLite and PostgreSQL, tampered with by raw SQL."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import stat
import time
from dataclasses import replace
from datetime import datetime, timezone

import pytest
from sqlalchemy import insert, text

from rbac_migrate import connections
from rbac_migrate.audit import KEY_FIELD, AuditRecord, key_id, new_record
from rbac_migrate.config import load_settings
from rbac_migrate.store import audit as audit_store
from rbac_migrate.store import open_store
from rbac_migrate.store.schema import audit_log
from tests.support.cli import assert_one_line_error, run

PEOPLE = "ou=people,dc=example,dc=org"


def _record(day: int, operator: str, action: str, target: str, **details) -> AuditRecord:
    record = new_record(action, target, ticket=f"CHG-{day}", **details)
    return replace(record, at=datetime(2026, 2, day, 9, 30, tzinfo=timezone.utc), operator=operator)


RECORDS = [
    _record(1, "alice@adm1", "role.create", "cn=role-fin,ou=roles,dc=example,dc=org", after={"members": []}),
    _record(2, "alice@adm1", "migrate.user", f"uid=bob,{PEOPLE}", before=["add cn=fin-read"], after="verified"),
    _record(3, "carol@adm2", "rollback.user", f"uid=bob,{PEOPLE}", before="verified", after="restored"),
    _record(4, "carol@adm2", "joiner.onboard", f"uid=dave,{PEOPLE}", after={"roles": ["role-fin"]}),
    _record(5, "alice@adm1", "playbook.step", "orphan-audit.yml", step=2),
]


def _logged(url: str, tmp_path):
    store = open_store(url)
    store.audit(*RECORDS)
    return store, {"RBAC_MIGRATE_STORE": url, "HOME": str(tmp_path)}


@pytest.fixture
def logged(store_url: str, tmp_path):
    """A store holding five chained records, and the environment to run the CLI against it."""
    return _logged(store_url, tmp_path)


@pytest.fixture
def logged_sqlite(tmp_path):
    """The same on SQLite only, for checks that do not depend on the database."""
    return _logged(f"sqlite:///{tmp_path / 'state.db'}", tmp_path)


def audit(env, *args: str):
    return run(["audit", *args], env)


def sql(store, statement: str, **params) -> None:
    with store.engine.begin() as conn:
        conn.execute(text(statement), params)


def problems(env) -> list[str]:
    result = audit(env, "verify")
    assert result.code == 1, result.out
    assert "not intact" in result.err
    return result.out.splitlines()


def test_log_lists_every_record_oldest_first(logged):
    _store, env = logged
    result = audit(env, "log", "--format", "json")
    assert result.code == 0, result.err
    listed = json.loads(result.out)
    assert [r["id"] for r in listed] == [1, 2, 3, 4, 5]
    assert listed[1]["details"] == {"before": ["add cn=fin-read"], "after": "verified"}
    assert listed[1]["ticket"] == "CHG-2" and listed[1]["at"] == "2026-02-02T09:30:00+00:00"
    assert listed[1]["prev_hash"] == listed[0]["hash"]


def test_log_filters_by_date_and_user(logged):
    _store, env = logged

    def ids(*args: str) -> list[int]:
        result = audit(env, "log", "--format", "json", *args)
        assert result.code == 0, result.err
        return [r["id"] for r in json.loads(result.out)]

    assert ids("--since", "2026-02-03") == [3, 4, 5]
    assert ids("--since", "2026-02-03T10:00+01:00") == [3, 4, 5]  # 09:00 UTC
    assert ids("--since", "2026-02-03T09:31") == [4, 5]
    assert ids("--user", "carol") == [3, 4]  # the operator, host or not
    assert ids("--user", "alice@adm1") == [1, 2, 5]
    assert ids("--user", "bob") == [2, 3]  # records about a user, by id
    assert ids("--user", f"UID=Bob,{PEOPLE}") == [2, 3]  # or by DN
    assert ids("--since", "2026-02-03", "--user", "bob") == [3]


def test_log_table_and_csv(logged):
    _store, env = logged
    table = audit(env, "log", "--user", "dave")
    assert table.code == 0
    lines = table.out.splitlines()
    assert lines[0].split() == ["id", "at", "operator", "action", "target", "ticket", "summary"]
    assert len(lines) == 3 and "joiner.onboard" in lines[2] and "CHG-4" in lines[2]
    rows = list(csv.DictReader(io.StringIO(audit(env, "log", "--format", "csv").out)))
    assert [r["action"] for r in rows] == [r.action for r in RECORDS]
    assert json.loads(rows[4]["details"]) == {"step": 2}


def test_bad_since_is_a_usage_error(logged):
    _store, env = logged
    assert_one_line_error(audit(env, "log", "--since", "last tuesday"), "--since 'last tuesday' is not a date", code=2)


def test_verify_intact(logged):
    _store, env = logged
    result = audit(env, "verify")
    assert (result.code, result.out) == (0, "intact: 5 records\n")


def test_verify_empty_log(store_url, tmp_path):
    open_store(store_url)
    result = audit({"RBAC_MIGRATE_STORE": store_url, "HOME": str(tmp_path)}, "verify")
    assert (result.code, result.out) == (0, "intact: 0 records\n")


def test_verify_detects_an_edited_record(logged):
    store, env = logged
    sql(store, "UPDATE audit_log SET ticket = 'CHG-999' WHERE id = 3")
    assert problems(env) == ["record 3: content does not match its hash (edited)"]


def test_verify_detects_a_deleted_record(logged):
    store, env = logged
    sql(store, "DELETE FROM audit_log WHERE id = 3")
    found = problems(env)
    assert found[0] == "record 4: expected record 3 here (deleted, inserted or reordered)"
    assert "record 4: does not follow the record before it" in found


def test_verify_detects_an_inserted_record(logged):
    store, env = logged
    # A forger who makes room and chains the new record correctly onto record 2 still breaks record 4.
    sql(store, "UPDATE audit_log SET id = id + 100 WHERE id >= 3")
    sql(store, "UPDATE audit_log SET id = id - 99 WHERE id >= 100")
    head = store.audit_records()[1]
    forged = new_record("role.delete", "cn=role-fin,ou=roles,dc=example,dc=org")
    forged = replace(forged, id=3, prev_hash=head.hash)
    forged = replace(forged, hash=forged.compute_hash())
    with store.engine.begin() as conn:
        conn.execute(
            insert(audit_log).values(
                id=3, at=forged.at, operator=forged.operator, action=forged.action, target=forged.target,
                details="{}", prev_hash=forged.prev_hash, hash=forged.hash,
            )
        )  # fmt: skip
    found = problems(env)
    assert not any(p.startswith("record 3:") for p in found)  # the forgery itself is well formed
    assert "record 4: does not follow the record before it" in found
    assert "record 4: content does not match its hash (edited)" in found  # its id moved


def test_verify_detects_reordered_records(logged):
    store, env = logged
    sql(store, "UPDATE audit_log SET id = 100 WHERE id = 2")
    sql(store, "UPDATE audit_log SET id = 2 WHERE id = 3")
    sql(store, "UPDATE audit_log SET id = 3 WHERE id = 100")
    found = problems(env)
    assert "record 2: does not follow the record before it" in found
    assert "record 3: does not follow the record before it" in found


def test_verify_detects_records_cut_from_the_end(logged):
    store, env = logged
    sql(store, "DELETE FROM audit_log WHERE id >= 4")
    assert problems(env) == ["the log ends at record 3 but 5 were written (records removed at the end)"]


@pytest.fixture
def tokyo(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_verify_outside_utc(tokyo, logged):
    # SQLite drops the zone of stored times; read back as local time they would change every hash.
    _store, env = logged
    assert audit(env, "verify").out == "intact: 5 records\n"
    listed = json.loads(audit(env, "log", "--format", "json", "--since", "2026-02-05").out)
    assert [(r["id"], r["at"]) for r in listed] == [(5, "2026-02-05T09:30:00+00:00")]


# -- cutting records from the end: checkpoints and batches ------------------------------------


def checkpoint(env, path) -> None:
    result = audit(env, "checkpoint", "-o", path)
    assert result.code == 0, result.err


def cut_from(store, first: int) -> None:
    """Delete records from ``first`` on and set audit_head back, as someone with SQL access could."""
    sql(store, "DELETE FROM audit_log WHERE id >= :first", first=first)
    rows = store.audit_records()
    last_id, last_hash = (rows[-1].id, rows[-1].hash) if rows else (0, "0" * 64)
    sql(store, "UPDATE audit_head SET last_id = :i, last_hash = :h", i=last_id, h=last_hash)


def test_checkpoint_writes_the_head_owner_only(logged_sqlite, tmp_path):
    store, env = logged_sqlite
    path = tmp_path / "head.json"
    checkpoint(env, path)
    written = json.loads(path.read_text())
    last = store.audit_records()[-1]
    assert (written["record"], written["hash"], written["records"]) == (5, last.hash, 5)
    assert written["at"] == "2026-02-05T09:30:00.000000+00:00"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert audit(env, "verify", "--checkpoint", path).out == "intact: 5 records\n"


def test_checkpoint_detects_records_cut_from_the_end_with_the_head_reset(logged, tmp_path):
    store, env = logged
    path = tmp_path / "head.json"
    checkpoint(env, path)
    cut_from(store, 4)
    assert audit(env, "verify").code == 0  # consistent without the checkpoint: that is why it exists
    result = audit(env, "verify", "--checkpoint", path)
    assert result.code == 1
    assert result.out == "the checkpoint's head, record 5, is no longer in the log (records removed)\n"


def test_checkpoint_detects_an_emptied_log(logged_sqlite, tmp_path):
    store, env = logged_sqlite
    path = tmp_path / "head.json"
    checkpoint(env, path)
    cut_from(store, 1)
    result = audit(env, "verify", "--checkpoint", path)
    assert (result.code, result.out.splitlines()) == (
        1,
        ["the checkpoint's head, record 5, is no longer in the log (records removed)"],
    )


def test_checkpoint_detects_a_rewritten_tail(logged_sqlite, tmp_path):
    store, env = logged_sqlite
    path = tmp_path / "head.json"
    checkpoint(env, path)
    cut_from(store, 4)
    store.audit(RECORDS[3], new_record("role.delete", "cn=role-fin,ou=roles,dc=example,dc=org"))
    result = audit(env, "verify", "--checkpoint", path)
    assert result.out == "record 5 no longer has the checkpoint's hash (the log was rewritten)\n"


def test_checkpoint_refuses_to_cover_a_shortened_log(logged_sqlite, tmp_path):
    store, env = logged_sqlite
    path = tmp_path / "head.json"
    checkpoint(env, path)
    before = path.read_text()
    cut_from(store, 4)
    result = audit(env, "checkpoint", "-o", path)
    assert_one_line_error(result, "the audit log is not intact", "record 5, is no longer in the log")
    assert path.read_text() == before  # the evidence stays
    store.audit(new_record("role.create", "cn=role-x,ou=roles,dc=example,dc=org"))
    assert audit(env, "checkpoint", "-o", tmp_path / "other.json").code == 0  # a new file is a new start


def test_checkpoint_extends_an_intact_log(logged_sqlite, tmp_path):
    store, env = logged_sqlite
    path = tmp_path / "head.json"
    checkpoint(env, path)
    store.audit(new_record("role.create", "cn=role-x,ou=roles,dc=example,dc=org"))
    checkpoint(env, path)
    assert json.loads(path.read_text())["record"] == 6


def test_bad_checkpoint_files_are_one_line(logged_sqlite, tmp_path):
    _store, env = logged_sqlite
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    assert_one_line_error(audit(env, "verify", "--checkpoint", junk), f"{junk} is not a checkpoint")
    assert_one_line_error(audit(env, "checkpoint", "-o", junk), f"{junk} is not a checkpoint")
    assert audit(env, "verify", "--checkpoint", tmp_path / "missing.json").code == 2
    assert_one_line_error(audit(env, "checkpoint", "-o", tmp_path / "no" / "h.json"), "cannot write")
    assert not list(tmp_path.glob(".*partial"))


def add_batches(store, *ids: int) -> None:
    for batch_id in ids:
        sql(
            store,
            "INSERT INTO batches (id, kind, status, operator, created_at, plan) "
            "VALUES (:id, 'migrate', 'applied', 'alice@adm1', :at, '{}')",
            id=batch_id,
            at=datetime(2026, 2, 6, tzinfo=timezone.utc),
        )


def test_batches_without_audit_records_fail_verify(store_url, tmp_path):
    store = open_store(store_url)
    env = {"RBAC_MIGRATE_STORE": store_url, "HOME": str(tmp_path)}
    add_batches(store, 1, 2, 3, 4, 7)
    assert problems(env) == ["the log is empty but the store holds 5 batches (records removed)"]
    store.audit(*[new_record("migrate.start", "cn=role-fin", batch=b) for b in (1, 2, 3, 4, 7)])
    assert audit(env, "verify").out == "intact: 5 records\n"
    cut_from(store, 3)
    assert problems(env) == ["batches 3-4, 7 have no audit record (records removed)"]


def test_a_migrated_batch_keeps_its_audit_records(ready, tmp_path):
    """The write engine's side of the contract: every batch it writes has an audit record naming it."""
    from tests.test_migration import candidates, plan_file

    org = ready
    store = open_store(org.store_url)
    store.audit(RECORDS[0])  # an earlier change, so that cutting the batch's records leaves a log
    plan = plan_file(org, tmp_path, candidates(org, 1))
    assert org.run("migrate", "apply", plan, "--ticket", "CHG-1", "--yes").code == 0
    assert org.run("audit", "verify").out.startswith("intact: ")
    first = min(r.id for r in store.audit_records() if r.details.get("batch") == 1)
    cut_from(store, first)
    result = org.run("audit", "verify")
    assert (result.code, result.out) == (1, "batch 1 has no audit record (records removed)\n")
    cut_from(store, 1)
    assert org.run("audit", "verify").out == "the log is empty but the store holds batch 1 (records removed)\n"


@pytest.fixture
def ready(org):
    assert org.run("snapshot", "take").code == 0
    return org


def test_verify_formats(logged_sqlite, tmp_path):
    store, env = logged_sqlite
    path = tmp_path / "head.json"
    checkpoint(env, path)
    report = json.loads(audit(env, "verify", "--checkpoint", path, "--format", "json").out)
    last = store.audit_records()[-1]
    assert report["intact"] is True and report["problems"] == []
    assert (report["records"], report["signed"], report["batches"]) == (5, 0, 0)
    assert report["head"]["record"] == 5 and report["head"]["hash"] == last.hash
    assert report["checkpoint"] == {"record": 5, "hash": last.hash}
    sql(store, "UPDATE audit_log SET ticket = 'CHG-999' WHERE id = 3")
    result = audit(env, "verify", "--format", "csv")
    assert result.code == 1
    rows = list(csv.DictReader(io.StringIO(result.out)))
    assert rows == [{"intact": "no", "records": "5", "problem": "record 3: content does not match its hash (edited)"}]
    broken = json.loads(audit(env, "verify", "--format", "json").out)
    assert broken["intact"] is False and broken["problems"] == [rows[0]["problem"]]


# -- records signed with audit_key_file -------------------------------------------------------


KEY = b"0123456789abcdef0123456789abcdef"


def key_file(tmp_path, key: bytes = KEY, name: str = "audit.key", mode: int = 0o600):
    path = tmp_path / name
    path.write_bytes(key + b"\n")
    os.chmod(path, mode)
    return path


@pytest.fixture
def signed(store_url, tmp_path):
    """Five records written by a store that signs with the key in audit_key_file."""
    path = key_file(tmp_path)
    env = {"RBAC_MIGRATE_STORE": store_url, "HOME": str(tmp_path), "RBAC_MIGRATE_AUDIT_KEY_FILE": str(path)}
    store = connections.store_for(load_settings(environ=env))
    store.audit(*RECORDS)
    return store, env


def rechain_without_key(store, first: int, keep_mark: bool = False) -> None:
    """What someone without the key can do: rewrite records from ``first`` on with plain SHA-256
    hashes, dropping the mark of the key that signed them or keeping it."""
    records = store.audit_records()
    prev = records[first - 2].hash if first > 1 else "0" * 64
    for record in records[first - 1 :]:
        details = {k: v for k, v in record.details.items() if k != KEY_FIELD or keep_mark}
        plain = replace(record, details=details, prev_hash=prev)
        plain = replace(plain, hash=hashlib.sha256((prev + plain.content()).encode()).hexdigest())
        sql(
            store,
            "UPDATE audit_log SET details = :d, prev_hash = :p, hash = :h WHERE id = :i",
            d=json.dumps(details, sort_keys=True),
            p=prev,
            h=plain.hash,
            i=record.id,
        )
        prev = plain.hash
    sql(store, "UPDATE audit_head SET last_hash = :h", h=prev)


def test_every_writer_signs_with_the_configured_key(signed):
    store, env = signed
    with store.begin() as conn:  # as the role catalogue appends, inside its own transaction
        audit_store.append(conn, [new_record("role.create", "cn=role-x,ou=roles,dc=example,dc=org")])
    assert {r.signed_by for r in store.audit_records()} == {key_id(KEY)}
    assert audit(env, "verify").out == "intact: 6 records\n"
    report = json.loads(audit(env, "verify", "--format", "json").out)
    assert report["signed"] == 6


def test_signed_records_need_the_key_and_the_right_key(signed, tmp_path):
    _store, env = signed
    without = {k: v for k, v in env.items() if k != "RBAC_MIGRATE_AUDIT_KEY_FILE"}
    assert problems(without) == ["records 1-5 are signed: set audit_key_file to check them"]
    other = key_file(tmp_path, b"another key, long enough to use", "other.key")
    found = problems({**env, "RBAC_MIGRATE_AUDIT_KEY_FILE": str(other)})
    assert found[0] == f"record 1: signed with another key ({key_id(KEY)}), not the one in audit_key_file"
    assert len(found) == 5


def test_an_edit_without_the_key_cannot_be_made_consistent(signed):
    store, env = signed
    sql(store, "UPDATE audit_log SET ticket = 'CHG-999' WHERE id = 3")
    assert problems(env) == ["record 3: content does not match its hash (edited)"]
    rechain_without_key(store, 3, keep_mark=True)  # a SHA-256 is not the HMAC the mark promises
    assert problems(env) == [f"record {n}: content does not match its hash (edited)" for n in (3, 4, 5)]
    rechain_without_key(store, 3)  # fix the chain from there with plain hashes
    assert problems(env) == [
        f"record {n}: not signed with the audit key though earlier records are (rewritten)" for n in (3, 4, 5)
    ]
    rechain_without_key(store, 1)  # or rewrite the whole log without the key
    assert problems(env)[0].startswith("no record is signed with the key in audit_key_file")


def test_unsigned_records_still_verify_and_signing_starts_when_the_key_is_set(logged_sqlite, tmp_path):
    _store, env = logged_sqlite  # five records written without a key
    keyed = {**env, "RBAC_MIGRATE_AUDIT_KEY_FILE": str(key_file(tmp_path))}
    assert audit(env, "verify").out == "intact: 5 records\n"
    connections.store_for(load_settings(environ=keyed)).audit(new_record("role.create", "cn=role-x"))
    assert audit(keyed, "verify").out == "intact: 6 records\n"
    assert problems(env) == ["records 6 are signed: set audit_key_file to check them"]


@pytest.mark.parametrize(
    ("key", "mode", "message"),
    [
        (KEY, 0o640, "is readable by others: run 'chmod 600"),
        (b"short", 0o600, "holds 5 bytes, fewer than 16"),
    ],
)
def test_an_unsafe_or_weak_key_file_is_refused(tmp_path, key, mode, message):
    path = key_file(tmp_path, key, mode=mode)
    env = {"RBAC_MIGRATE_STORE": f"sqlite:///{tmp_path / 's.db'}", "RBAC_MIGRATE_AUDIT_KEY_FILE": str(path)}
    assert_one_line_error(audit(env, "verify"), f"audit key file {path}", message)
