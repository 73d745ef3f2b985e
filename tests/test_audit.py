"""audit log and audit verify on real SQLite and PostgreSQL, tampered with by raw SQL."""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import replace
from datetime import datetime, timezone

import pytest
from sqlalchemy import insert, text

from rbac_migrate.audit import AuditRecord, new_record
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


@pytest.fixture
def logged(store_url: str, tmp_path):
    """A store holding five chained records, and the environment to run the CLI against it."""
    store = open_store(store_url)
    store.audit(*RECORDS)
    return store, {"RBAC_MIGRATE_STORE": store_url, "HOME": str(tmp_path)}


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
