"""Assignment rules of roles, stored joiner proposals, and plan approvals (four eyes).

Revision ID: 0008_roles_rules
Revises: 0007_versioned_snapshots
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_roles_rules"
down_revision = "0007_versioned_snapshots"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "role_rules",
        sa.Column("role_dn", sa.Text, primary_key=True),
        sa.Column("role_name", sa.Text, nullable=False),
        sa.Column("attrs", sa.Text, nullable=False),
        sa.Column("operator", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "joiner_proposals",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user_dn", sa.Text, nullable=False),
        sa.Column("snapshot_id", sa.Integer),
        sa.Column("operator", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
    )
    op.create_index("ix_joiner_proposals_user", "joiner_proposals", ["user_dn"])
    op.create_table(
        "plan_approvals",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("operator", sa.Text, nullable=False),
        sa.Column("ticket", sa.Text),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("plan_approvals")
    op.drop_index("ix_joiner_proposals_user", "joiner_proposals")
    op.drop_table("joiner_proposals")
    op.drop_table("role_rules")
