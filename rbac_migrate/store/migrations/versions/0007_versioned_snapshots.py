"""Versioned snapshots: each entry's versions with the snapshots they are valid for.

Existing snapshots are converted one by one, oldest first: an entry unchanged from the previous
snapshot extends its version, so the store shrinks to what actually changed. Members are
renumbered from per-snapshot positions to entity numbers.

Revision ID: 0007_versioned_snapshots
Revises: 0006_findings_exceptions
"""

import json
import sys
from array import array

import sqlalchemy as sa
from alembic import op

revision = "0007_versioned_snapshots"
down_revision = "0006_findings_exceptions"
branch_labels = None
depends_on = None

VERSION_COLUMNS = "entity, since, identity, kind, dn, dn_norm, name, name_norm, uuid, enabled, attrs, members"


def _unpack(blob) -> list[int]:
    packed = array("i")
    packed.frombytes(bytes(blob or b""))
    if sys.byteorder == "big":
        packed.byteswap()
    return list(packed)


def _pack(indexes) -> bytes:
    packed = array("i", indexes)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tobytes()


def _attrs_text(value):
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def upgrade() -> None:
    op.add_column("snapshots", sa.Column("sync", sa.Text))
    op.create_table(
        "entry_versions",
        sa.Column("entity", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("since", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("until", sa.Integer),
        sa.Column("identity", sa.Text, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("dn", sa.Text, nullable=False),
        sa.Column("dn_norm", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("name_norm", sa.Text, nullable=False),
        sa.Column("uuid", sa.String(64)),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("attrs", sa.JSON),
        sa.Column("members", sa.LargeBinary),
    )
    _convert(op.get_bind())
    op.drop_table("snapshot_entries")
    op.create_index("ix_entry_versions_until", "entry_versions", ["until"])
    op.create_index("ix_entry_versions_identity", "entry_versions", ["identity"])
    op.create_index("ix_entry_versions_name", "entry_versions", ["name_norm"])
    op.create_index("ix_entry_versions_dn", "entry_versions", ["dn_norm"])
    op.create_index("ix_entry_versions_kind", "entry_versions", ["kind", "enabled"])
    op.create_index("ix_entry_versions_peers", "entry_versions", [sa.text("(CAST(attrs AS TEXT))")])


def _convert(conn) -> None:
    """Replay the stored snapshots, oldest first, into versions."""
    entity_of: dict[str, int] = {}
    current: dict[int, tuple] = {}  # entity -> the compared values of its open version
    ids = [row[0] for row in conn.execute(sa.text("SELECT id FROM snapshots ORDER BY id"))]
    for snapshot_id in ids:
        rows = conn.execute(
            sa.text(
                "SELECT idx, kind, dn, dn_norm, name, name_norm, uuid, enabled, CAST(attrs AS TEXT), members "
                "FROM snapshot_entries WHERE snapshot_id = :s ORDER BY idx"
            ),
            {"s": snapshot_id},
        ).all()
        position = {}
        for row in rows:
            identity = row.uuid or f"dn:{row.dn_norm}"
            position[row.idx] = entity_of.setdefault(identity, len(entity_of))
        seen, inserts, closes = set(), [], []
        for row in rows:
            entity = position[row.idx]
            members = None if row.members is None else _pack(position[i] for i in _unpack(row.members))
            compared = (row.kind, row.dn, row.name, row.uuid, bool(row.enabled), _attrs_text(row[8]), members)
            seen.add(entity)
            if current.get(entity) == compared:
                continue
            if entity in current:
                closes.append(entity)
            current[entity] = compared
            identity = row.uuid or f"dn:{row.dn_norm}"
            inserts.append((entity, snapshot_id, identity, row.kind, row.dn, row.dn_norm, row.name, row.name_norm,
                            row.uuid, bool(row.enabled), compared[5], members))  # fmt: skip
        gone = [entity for entity in current if entity not in seen]
        for entity in gone:
            del current[entity]
        _close(conn, closes + gone, snapshot_id)
        _insert(conn, inserts)


def _close(conn, entities: list[int], snapshot_id: int) -> None:
    if entities:
        conn.execute(
            sa.text("UPDATE entry_versions SET until = :s WHERE entity = :e AND until IS NULL"),
            [{"s": snapshot_id, "e": e} for e in entities],
        )


def _insert(conn, rows: list[tuple]) -> None:
    if not rows:
        return
    names = VERSION_COLUMNS.split(", ")
    statement = sa.text(f"INSERT INTO entry_versions ({VERSION_COLUMNS}) VALUES ({', '.join(':' + n for n in names)})")
    conn.execute(
        statement.bindparams(sa.bindparam("members", type_=sa.LargeBinary)),
        [dict(zip(names, row, strict=True)) for row in rows],
    )


def downgrade() -> None:
    raise NotImplementedError("versioned snapshots cannot be turned back into full copies; restore a backup")
