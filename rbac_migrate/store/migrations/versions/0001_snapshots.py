"""Snapshots of users, groups and memberships.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "snapshots",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("flavour", sa.String(16), nullable=False),
        sa.Column("bases", sa.JSON, nullable=False),
        sa.Column("users", sa.Integer, nullable=False),
        sa.Column("grants", sa.Integer, nullable=False),
        sa.Column("roles", sa.Integer, nullable=False),
        sa.Column("memberships", sa.Integer, nullable=False),
    )
    op.create_table(
        "snapshot_entries",
        sa.Column(
            "snapshot_id",
            sa.Integer,
            sa.ForeignKey("snapshots.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
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
    op.create_index("ix_snapshot_entries_name", "snapshot_entries", ["snapshot_id", "name_norm"])
    op.create_index("ix_snapshot_entries_dn", "snapshot_entries", ["snapshot_id", "dn_norm"])
    op.create_index("ix_snapshot_entries_kind", "snapshot_entries", ["snapshot_id", "kind"])


def downgrade() -> None:
    op.drop_table("snapshot_entries")
    op.drop_table("snapshots")
