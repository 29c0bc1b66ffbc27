"""The relational schema, one definition for SQLite and PostgreSQL (SQLAlchemy Core).

Migrations in `double11/adapters/migrations` create it; this module is what
queries are written against. A committed event is one row of `events`, its
ledger entries and limit claims inside it (see migration 0003 for why and what
it measured); the views `ledger` and `claims` read them out for SQL. Money lives
in that JSON as decimal strings, never floats. Instants are stored in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    TypeDecorator,
)


class Instant(TypeDecorator[datetime]):
    """A time-zone aware instant, stored in UTC (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("instants must be time-zone aware")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

customers = Table(
    "customers",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("profile", Text, nullable=False),  # JSON of the whole profile
    Column("updated_at", Instant, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("seq", Integer, nullable=False),  # commit order, for rebuilding state
    Column("type", String(64), nullable=False),
    Column("customer_id", String(128), nullable=False),
    Column("at", Instant, nullable=False),
    Column("phase", String(64)),
    Column("fingerprint", String(64), nullable=False),
    # The decision as answered, JSON; its `grants` are the event's ledger entries.
    Column("decision", Text, nullable=False),
    Column("decided_at", Instant, nullable=False),
    # The event's data as received, JSON with amounts as strings (migration 0002).
    Column("data", Text, nullable=False, server_default="{}"),
    # The limit claims the event took, a JSON array (`engine.codec.encode_claims`):
    # what quota, budget, cap and perk usage are rebuilt and reconciled from (0003).
    Column("claims", Text, nullable=False, server_default="[]"),
    # Wallet reads by customer: on disk where many workers share the store; the
    # embedded store's one process keeps this index in memory (migration 0003).
    Index("ix_events_customer", "customer_id").ddl_if(dialect="postgresql"),
    Index("ix_events_seq", "seq"),
)

# The customers an event granted to besides its own (an invitation rewards the
# inviter too): rare rows that let a wallet find those grants (migration 0003).
grantees = Table(
    "grantees",
    metadata,
    Column("customer_id", String(128), nullable=False),
    Column("seq", Integer, nullable=False),
    PrimaryKeyConstraint("customer_id", "seq"),
)

# The ledger and the claims are views over `events` (migration 0003): `ledger` has
# a row per entry of a decision's `grants`, `claims` a row per claim, with the
# columns the tables had before, plus `seq` and `position` for their order.
VIEWS = ("ledger", "claims")

# Every campaign file a store has run, so a change is versioned and can be traced.
campaign_versions = Table(
    "campaign_versions",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("campaign_id", String(128), nullable=False),
    Column("source", Text, nullable=False),
    Column("loaded_at", Instant, nullable=False),
    Column("loaded_by", String(128), nullable=False),
)


def declared_on(item: object, dialect_name: str) -> bool:
    """Whether the schema declares `item` (a table, index, ...) on this dialect.

    Alembic's autogenerate does not read `ddl_if`, so its comparisons ask this.
    """
    ddl_if = getattr(item, "_ddl_if", None)
    if ddl_if is None or ddl_if.dialect is None:
        return True
    if isinstance(ddl_if.dialect, str):
        return bool(ddl_if.dialect == dialect_name)
    return dialect_name in ddl_if.dialect
