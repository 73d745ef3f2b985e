"""One journal for every kind of write: member identities, entry attributes, unit subjects, plan digests.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("batch_steps") as table:
        table.add_column(sa.Column("value_uuid", sa.String(64)))
        table.add_column(sa.Column("detail", sa.Text))
    with op.batch_alter_table("batch_users") as table:
        table.add_column(sa.Column("subjects", sa.Text))
    with op.batch_alter_table("batches") as table:
        table.alter_column("kind", type_=sa.String(24), existing_type=sa.String(16))
    op.create_table(
        "plans",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("path", sa.Text),
        sa.Column("operator", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("batch_id", sa.Integer),
    )


def downgrade() -> None:
    op.drop_table("plans")
    with op.batch_alter_table("batch_users") as table:
        table.drop_column("subjects")
    with op.batch_alter_table("batch_steps") as table:
        table.drop_column("detail")
        table.drop_column("value_uuid")
