"""Role catalogue: role definitions, their history, rollback points of role commands; peer look-ups.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_snapshot_entries_peers", "snapshot_entries", ["snapshot_id", sa.text("(CAST(attrs AS TEXT))")])
    op.create_index("ix_snapshot_entries_enabled", "snapshot_entries", ["snapshot_id", "enabled"])
    op.create_table(
        "role_definitions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("name_norm", sa.Text, nullable=False),
        sa.Column("dn", sa.Text, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("grants", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_role_definitions_name", "role_definitions", ["name_norm"])
    op.create_table(
        "role_changes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("role_dn", sa.Text, nullable=False),
        sa.Column("operator", sa.Text, nullable=False),
        sa.Column("ticket", sa.Text),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("message", sa.Text),
    )
    op.create_table(
        "role_change_groups",
        sa.Column("change_id", sa.Integer, sa.ForeignKey("role_changes.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("group_dn", sa.Text, nullable=False),
        sa.Column("existed", sa.Boolean, nullable=False),
        sa.Column("prior_members", sa.Text, nullable=False),
        sa.Column("changes", sa.Text, nullable=False),
    )
    op.create_table(
        "role_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("role_id", sa.Integer, sa.ForeignKey("role_definitions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("change_id", sa.Integer, sa.ForeignKey("role_changes.id")),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("operator", sa.Text, nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("ticket", sa.Text),
        sa.Column("details", sa.Text, nullable=False),
    )
    op.create_index("ix_role_history_role", "role_history", ["role_id"])


def downgrade() -> None:
    op.drop_index("ix_role_history_role", table_name="role_history")
    op.drop_table("role_history")
    op.drop_table("role_change_groups")
    op.drop_table("role_changes")
    op.drop_index("ix_role_definitions_name", table_name="role_definitions")
    op.drop_table("role_definitions")
    op.drop_index("ix_snapshot_entries_enabled", table_name="snapshot_entries")
    op.drop_index("ix_snapshot_entries_peers", table_name="snapshot_entries")
