"""An index of every current entry's DN by entity, which an incremental snapshot reads whole.

Member values of the groups a change reaches resolve against the DNs of the latest snapshot's
entries; read from this partial index, they need not be fetched from the wide version rows.

Revision ID: 0009_current_names
Revises: 0008_roles_rules
"""

from alembic import op

revision = "0009_current_names"
down_revision = "0008_roles_rules"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX ix_entry_versions_current_names ON entry_versions (entity, dn) WHERE until IS NULL")


def downgrade() -> None:
    op.execute("DROP INDEX ix_entry_versions_current_names")
