"""Keep each event's data beside its decision.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03

Until now an event was stored without its `data` (the amount of a deposit, the
product of a reservation): its fingerprint told a replay from a reused id, but
what the customer did could not be read back for an audit, a clawback or a
replay of the campaign. Events committed before this revision keep `{}`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add `events.data`, a JSON object with amounts as strings."""
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("data", sa.Text, nullable=False, server_default="{}"))


def downgrade() -> None:
    """Drop `events.data`."""
    with op.batch_alter_table("events") as batch:
        batch.drop_column("data")
