"""Table definitions; the Alembic migrations create exactly these."""

from __future__ import annotations

from datetime import timezone

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
    TypeDecorator,
    cast,
)

metadata = MetaData()


class UTCDateTime(TypeDecorator):
    """Timestamps stored as UTC and always read back timezone-aware.

    SQLite keeps no zone and hands back naive values; hashes and comparisons need one meaning.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(timezone.utc)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


snapshots = Table(
    "snapshots",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("taken_at", UTCDateTime(), nullable=False),
    Column("source", Text, nullable=False),
    Column("flavour", String(16), nullable=False),
    Column("bases", JSON, nullable=False),
    Column("users", Integer, nullable=False),
    Column("grants", Integer, nullable=False),
    Column("roles", Integer, nullable=False),
    Column("memberships", Integer, nullable=False),
    # How the directory was read, and what the next incremental read starts from (JSON).
    Column("sync", Text),
)

# Each entry's versions, keyed by a stable entity number (one per identity: entryUUID /
# objectGUID, else the normalised DN), with the snapshots they are valid for: since <= id < until,
# until NULL while current. An entry unchanged by a new snapshot costs nothing. Groups keep their
# members as a packed array of entity numbers, in directory order.
entry_versions = Table(
    "entry_versions",
    metadata,
    Column("entity", Integer, primary_key=True, autoincrement=False),
    Column("since", Integer, primary_key=True, autoincrement=False),
    Column("until", Integer),
    Column("identity", Text, nullable=False),
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
Index("ix_entry_versions_until", entry_versions.c.until)
Index("ix_entry_versions_identity", entry_versions.c.identity)
Index("ix_entry_versions_name", entry_versions.c.name_norm)
Index("ix_entry_versions_dn", entry_versions.c.dn_norm)
Index("ix_entry_versions_kind", entry_versions.c.kind, entry_versions.c.enabled)
# Also ix_entry_versions_current_names ON (entity, dn) WHERE until IS NULL (migration 0009): every
# current entry's DN by entity, what an incremental snapshot resolves member values against. It is
# not declared here: its dialect options would load SQLAlchemy's PostgreSQL dialect in every command.
# Joiner proposals look up a job's peers (equal peer attributes, compared as their JSON text).
Index("ix_entry_versions_peers", cast(entry_versions.c.attrs, Text))

# Hash-chained audit log; audit_head serialises appends so the chain never forks.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("operator", Text, nullable=False),
    Column("action", String(64), nullable=False),
    Column("ticket", Text),
    Column("target", Text, nullable=False),
    Column("details", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_id", Integer, nullable=False),
    Column("last_hash", String(64), nullable=False),
)

# The change journal: a batch, its users and its value-level steps, written before any LDAP write.
batches = Table(
    "batches",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(24), nullable=False),
    Column("role_dn", Text),
    Column("role_uuid", String(64)),
    Column("status", String(24), nullable=False),
    Column("operator", Text, nullable=False),
    Column("ticket", Text),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime()),
    Column("holder", Text),
    Column("message", Text),
    Column("plan", Text, nullable=False),
)
batch_users = Table(
    "batch_users",
    metadata,
    Column("batch_id", Integer, ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("user_dn", Text, nullable=False),
    Column("user_uuid", String(64)),
    Column("state", String(24), nullable=False),
    Column("before_access", Text, nullable=False),
    Column("message", Text),
    Column("subjects", Text),  # JSON: every user whose access the unit changes or keeps, before and after
)
batch_steps = Table(
    "batch_steps",
    metadata,
    Column("batch_id", Integer, ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("position", Integer, nullable=False),
    Column("op", String(8), nullable=False),
    Column("group_dn", Text, nullable=False),
    Column("group_uuid", String(64)),
    Column("value", Text, nullable=False),
    Column("state", String(24), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("value_uuid", String(64)),  # identity of the member value's entry
    Column("detail", Text),  # JSON: attributes of a created or removed entry; dangling deletes
)
# Every plan file written, by the digest of its bytes: apply refuses a file the store never wrote,
# and says which batch applied it when it is applied again.
plans = Table(
    "plans",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("kind", String(24), nullable=False),
    Column("path", Text),
    Column("operator", Text, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("batch_id", Integer),
)
locks = Table(
    "locks",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", Text, nullable=False),
    Column("since", UTCDateTime(), nullable=False),
)

# The role catalogue: one row per role the tool has defined. A deleted role keeps its row, so its
# history stays readable; grants are the grant-group DNs it is nested into, as a JSON list.
role_definitions = Table(
    "role_definitions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False),
    Column("name_norm", Text, nullable=False),
    Column("dn", Text, nullable=False),
    Column("description", Text),
    Column("grants", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)
Index("ix_role_definitions_name", role_definitions.c.name_norm)

# Rollback points of role commands: every group a command touches, with its member values as read
# just before the first write, and the changes planned for it.
role_changes = Table(
    "role_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("action", String(32), nullable=False),
    Column("role_dn", Text, nullable=False),
    Column("operator", Text, nullable=False),
    Column("ticket", Text),
    Column("state", String(16), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime()),
    Column("message", Text),
)
role_change_groups = Table(
    "role_change_groups",
    metadata,
    Column("change_id", Integer, ForeignKey("role_changes.id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("group_dn", Text, nullable=False),
    Column("existed", Boolean, nullable=False),
    Column("prior_members", Text, nullable=False),
    Column("changes", Text, nullable=False),
)
role_history = Table(
    "role_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("role_id", Integer, ForeignKey("role_definitions.id", ondelete="CASCADE"), nullable=False),
    Column("change_id", Integer, ForeignKey("role_changes.id")),
    Column("at", UTCDateTime(), nullable=False),
    Column("operator", Text, nullable=False),
    Column("action", String(32), nullable=False),
    Column("ticket", Text),
    Column("details", Text, nullable=False),
)
Index("ix_role_history_role", role_history.c.role_id)

# Accepted exceptions: a user may keep a group until a date; users and groups by identity.
finding_exceptions = Table(
    "finding_exceptions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_key", Text, nullable=False),
    Column("user_name", Text, nullable=False),
    Column("user_dn", Text, nullable=False),
    Column("group_key", Text, nullable=False),
    Column("group_name", Text, nullable=False),
    Column("group_dn", Text, nullable=False),
    Column("owner", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("ticket", Text),
    Column("expires", UTCDateTime(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("created_by", Text, nullable=False),
)
Index("ix_finding_exceptions_pair", finding_exceptions.c.user_key, finding_exceptions.c.group_key)

# The findings register: every finding ever reported, with its dates, status and what fixed it.
findings_register = Table(
    "findings_register",
    metadata,
    Column("key", Text, primary_key=True),
    Column("category", String(32), nullable=False),
    Column("user_key", Text, nullable=False),
    Column("user_name", Text, nullable=False),
    Column("group_key", Text, nullable=False),
    Column("group_name", Text, nullable=False),
    Column("member_value", Text, nullable=False),
    Column("first_seen", UTCDateTime(), nullable=False),
    Column("last_seen", UTCDateTime(), nullable=False),
    Column("last_snapshot", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("status_at", UTCDateTime(), nullable=False),
    Column("fixed_at", UTCDateTime()),
    Column("fixed_batch", Integer),
)
Index("ix_findings_register_status", findings_register.c.status)
# Assignment rules (birthright roles): the peer-attribute values that make a user a natural holder
# of a role, as a JSON object; one rule per role, replaced by the next 'role rule set'.
role_rules = Table(
    "role_rules",
    metadata,
    Column("role_dn", Text, primary_key=True),  # normalised
    Column("role_name", Text, nullable=False),
    Column("attrs", Text, nullable=False),
    Column("operator", Text, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)
# Joiner proposals as shown, so 'joiner onboard --proposal N' carries out exactly what was shown.
joiner_proposals = Table(
    "joiner_proposals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_dn", Text, nullable=False),  # normalised
    Column("snapshot_id", Integer),
    Column("operator", Text, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("body", Text, nullable=False),  # JSON: the proposals with the role grants they rest on
)
Index("ix_joiner_proposals_user", joiner_proposals.c.user_dn)
# Four eyes: plan files approved by an operator other than their planner.
plan_approvals = Table(
    "plan_approvals",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("operator", Text, nullable=False),
    Column("ticket", Text),
    Column("approved_at", UTCDateTime(), nullable=False),
)

# What reports keep of a snapshot 'snapshot prune' removed: its listing line, its migration
# progress and its findings counts (JSON), so trends still start at the first snapshot.
history_points = Table(
    "history_points",
    metadata,
    Column("snapshot_id", Integer, primary_key=True),
    Column("taken_at", UTCDateTime(), nullable=False),
    Column("source", Text, nullable=False),
    Column("users", Integer, nullable=False),
    Column("grants", Integer, nullable=False),
    Column("roles", Integer, nullable=False),
    Column("memberships", Integer, nullable=False),
    Column("progress", Text, nullable=False),
    Column("findings", Text, nullable=False),
)
