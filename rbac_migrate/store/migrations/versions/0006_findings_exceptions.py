"""Accepted exceptions and the findings register.

Revision ID: 0006_findings_exceptions
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_findings_exceptions"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "finding_exceptions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user_key", sa.Text, nullable=False),
        sa.Column("user_name", sa.Text, nullable=False),
        sa.Column("user_dn", sa.Text, nullable=False),
        sa.Column("group_key", sa.Text, nullable=False),
        sa.Column("group_name", sa.Text, nullable=False),
        sa.Column("group_dn", sa.Text, nullable=False),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("ticket", sa.Text),
        sa.Column("expires", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
    )
    op.create_index("ix_finding_exceptions_pair", "finding_exceptions", ["user_key", "group_key"])
    op.create_table(
        "findings_register",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("user_key", sa.Text, nullable=False),
        sa.Column("user_name", sa.Text, nullable=False),
        sa.Column("group_key", sa.Text, nullable=False),
        sa.Column("group_name", sa.Text, nullable=False),
        sa.Column("member_value", sa.Text, nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_snapshot", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fixed_at", sa.DateTime(timezone=True)),
        sa.Column("fixed_batch", sa.Integer),
    )
    op.create_index("ix_findings_register_status", "findings_register", ["status"])


def downgrade() -> None:
    op.drop_index("ix_findings_register_status", table_name="findings_register")
    op.drop_table("findings_register")
    op.drop_index("ix_finding_exceptions_pair", table_name="finding_exceptions")
    op.drop_table("finding_exceptions")
