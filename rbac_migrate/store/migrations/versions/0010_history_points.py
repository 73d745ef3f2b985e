"""What reports keep of a pruned snapshot: its progress and findings counts.

Revision ID: 0010_history_points
Revises: 0009_current_names
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_history_points"
down_revision = "0009_current_names"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "history_points",
        sa.Column("snapshot_id", sa.Integer, primary_key=True),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("users", sa.Integer, nullable=False),
        sa.Column("grants", sa.Integer, nullable=False),
        sa.Column("roles", sa.Integer, nullable=False),
        sa.Column("memberships", sa.Integer, nullable=False),
        sa.Column("progress", sa.Text, nullable=False),
        sa.Column("findings", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("history_points")
