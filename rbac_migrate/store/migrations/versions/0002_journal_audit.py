"""Change journal (batches, users, steps), operator locks and the hash-chained audit log.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("operator", sa.Text, nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("ticket", sa.Text),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("last_id", sa.Integer, nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "batches",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("role_dn", sa.Text),
        sa.Column("role_uuid", sa.String(64)),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("operator", sa.Text, nullable=False),
        sa.Column("ticket", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("holder", sa.Text),
        sa.Column("message", sa.Text),
        sa.Column("plan", sa.Text, nullable=False),
    )
    op.create_table(
        "batch_users",
        sa.Column("batch_id", sa.Integer, sa.ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("user_dn", sa.Text, nullable=False),
        sa.Column("user_uuid", sa.String(64)),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("before_access", sa.Text, nullable=False),
        sa.Column("message", sa.Text),
    )
    op.create_table(
        "batch_steps",
        sa.Column("batch_id", sa.Integer, sa.ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("op", sa.String(8), nullable=False),
        sa.Column("group_dn", sa.Text, nullable=False),
        sa.Column("group_uuid", sa.String(64)),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "locks",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.Text, nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    for table in ("locks", "batch_steps", "batch_users", "batches", "audit_head", "audit_log"):
        op.drop_table(table)
