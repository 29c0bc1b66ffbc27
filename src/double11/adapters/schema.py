"""The relational schema, one definition for SQLite and PostgreSQL (SQLAlchemy Core).

Migrations in `double11/adapters/migrations` create it; this module is what
queries are written against. Money is NUMERIC(18, 2) on PostgreSQL and text on
SQLite, which has no exact decimal type; both come back as `Decimal`.
Instants are stored in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    TypeDecorator,
)


class Money(TypeDecorator[Decimal]):
    """Exact yuan: NUMERIC on PostgreSQL, a decimal string on SQLite."""

    impl = Numeric(18, 2)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(32))
        return dialect.type_descriptor(Numeric(18, 2, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return f"{value:f}" if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


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
    Column("decision", Text, nullable=False),  # the decision as answered, JSON
    Column("decided_at", Instant, nullable=False),
    # The event's data as received, JSON with amounts as strings (migration 0002).
    Column("data", Text, nullable=False, server_default="{}"),
    Index("ix_events_customer", "customer_id"),
    Index("ix_events_seq", "seq"),
)

ledger = Table(
    "ledger",
    metadata,
    Column("id", String(300), primary_key=True),
    Column("event_id", String(128), nullable=False),
    Column("mechanic_id", String(128), nullable=False),
    Column("customer_id", String(128), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("asset", String(32), nullable=False),
    Column("at", Instant, nullable=False),
    Column("points", Integer, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("cost", Money, nullable=False),
    Column("attributes", Text, nullable=False),  # JSON object of strings
    Column("refers_to", String(300)),
    Index("ix_ledger_customer", "customer_id"),
    Index("ix_ledger_event", "event_id"),
    Index("ix_ledger_mechanic", "mechanic_id"),
)

# The limit claims each committed event took: one row per (event, mechanic) that
# fired. They are what quota, budget and cap usage are rebuilt and reconciled from.
claims = Table(
    "claims",
    metadata,
    Column("event_id", String(128), nullable=False),
    Column("mechanic_id", String(128), nullable=False),
    Column("customer_id", String(128), nullable=False),
    Column("cost", Money, nullable=False),
    Column("quota", Integer),
    Column("budget", Money),
    Column("cap", Integer),
    Column("cap_bucket", String(64), nullable=False),
    Column("perks", Text, nullable=False),  # comma-separated perk names
    PrimaryKeyConstraint("event_id", "mechanic_id"),
    Index("ix_claims_mechanic", "mechanic_id"),
)

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
