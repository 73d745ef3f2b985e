"""Table definitions; the Alembic migrations create exactly these."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

snapshots = Table(
    "snapshots",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("taken_at", DateTime(timezone=True), nullable=False),
    Column("source", Text, nullable=False),
    Column("flavour", String(16), nullable=False),
    Column("bases", JSON, nullable=False),
    Column("users", Integer, nullable=False),
    Column("grants", Integer, nullable=False),
    Column("roles", Integer, nullable=False),
    Column("memberships", Integer, nullable=False),
)

# One row per user, group or member target. Groups keep their members as a packed array of
# entry indexes: a snapshot of a million memberships is a few thousand rows, written in seconds.
snapshot_entries = Table(
    "snapshot_entries",
    metadata,
    Column("snapshot_id", Integer, ForeignKey("snapshots.id", ondelete="CASCADE"), primary_key=True),
    Column("idx", Integer, primary_key=True, autoincrement=False),
    Column("kind", String(16), nullable=False),
    Column("dn", Text, nullable=False),
    Column("dn_norm", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("name_norm", Text, nullable=False),
    Column("uuid", String(64)),
    Column("enabled", Boolean, nullable=False),
    Column("attrs", JSON),
    Column("members", LargeBinary),
)
Index("ix_snapshot_entries_name", snapshot_entries.c.snapshot_id, snapshot_entries.c.name_norm)
Index("ix_snapshot_entries_dn", snapshot_entries.c.snapshot_id, snapshot_entries.c.dn_norm)
Index("ix_snapshot_entries_kind", snapshot_entries.c.snapshot_id, snapshot_entries.c.kind)
