"""The initial schema: customers, events, ledger, claims and campaign versions.

Revision ID: 0001
Revises:
Create Date: 2026-12-03

Types are written out here rather than imported from `double11.adapters.schema`,
so this revision stays what it was when the schema moves on. Money is
NUMERIC(18, 2), or text on SQLite (no exact decimal type there); instants are
timestamps with a time zone.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

MONEY = sa.Numeric(18, 2).with_variant(sa.String(32), "sqlite")
INSTANT = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create every table and index."""
    op.create_table(
        "customers",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("profile", sa.Text, nullable=False),
        sa.Column("updated_at", INSTANT, nullable=False),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("at", INSTANT, nullable=False),
        sa.Column("phase", sa.String(64)),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("decision", sa.Text, nullable=False),
        sa.Column("decided_at", INSTANT, nullable=False),
    )
    op.create_index("ix_events_customer", "events", ["customer_id"])
    op.create_index("ix_events_seq", "events", ["seq"])
    op.create_table(
        "ledger",
        sa.Column("id", sa.String(300), primary_key=True),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("mechanic_id", sa.String(128), nullable=False),
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("asset", sa.String(32), nullable=False),
        sa.Column("at", INSTANT, nullable=False),
        sa.Column("points", sa.Integer, nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("cost", MONEY, nullable=False),
        sa.Column("attributes", sa.Text, nullable=False),
        sa.Column("refers_to", sa.String(300)),
    )
    op.create_index("ix_ledger_customer", "ledger", ["customer_id"])
    op.create_index("ix_ledger_event", "ledger", ["event_id"])
    op.create_index("ix_ledger_mechanic", "ledger", ["mechanic_id"])
    op.create_table(
        "claims",
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("mechanic_id", sa.String(128), nullable=False),
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("cost", MONEY, nullable=False),
        sa.Column("quota", sa.Integer),
        sa.Column("budget", MONEY),
        sa.Column("cap", sa.Integer),
        sa.Column("cap_bucket", sa.String(64), nullable=False),
        sa.Column("perks", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("event_id", "mechanic_id"),
    )
    op.create_index("ix_claims_mechanic", "claims", ["mechanic_id"])
    op.create_table(
        "campaign_versions",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("campaign_id", sa.String(128), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("loaded_at", INSTANT, nullable=False),
        sa.Column("loaded_by", sa.String(128), nullable=False),
    )


def downgrade() -> None:
    """Drop every table (and with them their indexes)."""
    for table in ("campaign_versions", "claims", "ledger", "events", "customers"):
        op.drop_table(table)
