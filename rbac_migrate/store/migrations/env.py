"""Alembic environment: always driven with a connection handed over by the store."""

from alembic import context

from rbac_migrate.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise SystemExit("run migrations through 'rbac-migrate db upgrade'")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
