"""One row per event: its claims beside its decision; the ledger and claims become views.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04

Until now a committed event wrote three rows: the event (whose decision already
held every grant), one ledger row per grant and one claims row per limit claim,
each table with its own primary key and secondary indexes. On SQLite each of
those random-key index entries dirties a page of its own in every group commit,
and the write cost more than the whole decision: measured with 200,000
engine-shaped events in 500-event transactions, synchronous=FULL, on one core,
35 µs of CPU an event in that layout, 13 µs without the ledger's and claims'
indexes, 4.7 µs with one row per event.

So an event's claims move into `events.claims` (a JSON array), the `ledger`
and `claims` tables go, and views of the same names and columns read them out
of `events.decision` and `events.claims`: an audit still queries `ledger` and
`claims`, and a grant still cannot exist without the event that made it. A
grant to a customer other than the event's own (an invitation rewards the
inviter too) is found through `grantees`, a row per such customer and event.

`ix_events_customer` stays on PostgreSQL, where many workers read wallets
through it; the embedded store keeps that index in memory instead (its one
process owns the file), so SQLite loses it and one random insert an event.

Rows are moved in both directions, so upgrading and downgrading keep every
grant and claim.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

MONEY = sa.Numeric(18, 2).with_variant(sa.String(32), "sqlite")
INSTANT = sa.DateTime(timezone=True)
CHUNK = 5_000

# The views, per dialect. A ledger row's `at` is the grant's instant as the
# decision states it (RFC 3339 with its offset) on SQLite, a timestamptz on PostgreSQL.
_SQLITE_VIEWS = (
    """
    CREATE VIEW ledger AS
    SELECT json_extract(g.value, '$.id') AS id,
           e.id AS event_id,
           json_extract(g.value, '$.mechanic_id') AS mechanic_id,
           json_extract(g.value, '$.customer_id') AS customer_id,
           json_extract(g.value, '$.kind') AS kind,
           json_extract(g.value, '$.asset') AS asset,
           json_extract(g.value, '$.at') AS at,
           json_extract(g.value, '$.points') AS points,
           json_extract(g.value, '$.quantity') AS quantity,
           json_extract(g.value, '$.cost') AS cost,
           json_extract(g.value, '$.attributes') AS attributes,
           json_extract(g.value, '$.refers_to') AS refers_to,
           e.seq AS seq,
           g.key AS position
    FROM events AS e, json_each(e.decision, '$.grants') AS g
    """,
    """
    CREATE VIEW claims AS
    SELECT e.id AS event_id,
           json_extract(c.value, '$[0]') AS mechanic_id,
           coalesce(json_extract(c.value, '$[7]'), e.customer_id) AS customer_id,
           json_extract(c.value, '$[1]') AS cost,
           json_extract(c.value, '$[2]') AS quota,
           json_extract(c.value, '$[3]') AS budget,
           json_extract(c.value, '$[4]') AS cap,
           json_extract(c.value, '$[5]') AS cap_bucket,
           json_extract(c.value, '$[6]') AS perks,
           e.seq AS seq,
           c.key AS position
    FROM events AS e, json_each(e.claims) AS c
    """,
)
_POSTGRES_VIEWS = (
    """
    CREATE VIEW ledger AS
    SELECT g.value ->> 'id' AS id,
           e.id AS event_id,
           g.value ->> 'mechanic_id' AS mechanic_id,
           g.value ->> 'customer_id' AS customer_id,
           g.value ->> 'kind' AS kind,
           g.value ->> 'asset' AS asset,
           CAST(g.value ->> 'at' AS timestamptz) AS at,
           CAST(g.value ->> 'points' AS integer) AS points,
           CAST(g.value ->> 'quantity' AS integer) AS quantity,
           CAST(g.value ->> 'cost' AS numeric(18, 2)) AS cost,
           CAST(g.value -> 'attributes' AS text) AS attributes,
           g.value ->> 'refers_to' AS refers_to,
           e.seq AS seq,
           g.position - 1 AS position
    FROM events AS e
    CROSS JOIN LATERAL jsonb_array_elements(CAST(e.decision AS jsonb) -> 'grants')
         WITH ORDINALITY AS g(value, position)
    """,
    """
    CREATE VIEW claims AS
    SELECT e.id AS event_id,
           c.value ->> 0 AS mechanic_id,
           coalesce(c.value ->> 7, e.customer_id) AS customer_id,
           CAST(c.value ->> 1 AS numeric(18, 2)) AS cost,
           CAST(c.value ->> 2 AS integer) AS quota,
           CAST(c.value ->> 3 AS numeric(18, 2)) AS budget,
           CAST(c.value ->> 4 AS integer) AS cap,
           c.value ->> 5 AS cap_bucket,
           CAST(c.value -> 6 AS text) AS perks,
           e.seq AS seq,
           c.position - 1 AS position
    FROM events AS e
    CROSS JOIN LATERAL jsonb_array_elements(CAST(e.claims AS jsonb))
         WITH ORDINALITY AS c(value, position)
    """,
)


def _sqlite() -> bool:
    return bool(op.get_bind().dialect.name == "sqlite")


def upgrade() -> None:
    """Fold claims into `events.claims`, drop the ledger and claims tables, add the views."""
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("claims", sa.Text, nullable=False, server_default="[]"))
    _fold_claims()
    op.create_table(
        "grantees",
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "seq"),
    )
    op.execute(
        "INSERT INTO grantees (customer_id, seq) SELECT DISTINCT l.customer_id, e.seq"
        " FROM ledger AS l JOIN events AS e ON e.id = l.event_id"
        " WHERE l.customer_id <> e.customer_id"
    )
    op.drop_table("ledger")
    op.drop_table("claims")
    if _sqlite():
        op.drop_index("ix_events_customer", "events")
    for view in _SQLITE_VIEWS if _sqlite() else _POSTGRES_VIEWS:
        op.execute(view)


def downgrade() -> None:
    """Recreate the ledger and claims tables from the events, and drop `events.claims`."""
    op.execute("DROP VIEW claims")
    op.execute("DROP VIEW ledger")
    if _sqlite():
        op.create_index("ix_events_customer", "events", ["customer_id"])
    _create_tables()
    _unfold()
    op.drop_table("grantees")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("claims")


def _fold_claims() -> None:
    """Write each event's claims rows into its `claims` column, in the decision's order."""
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT c.event_id, c.mechanic_id, c.cost, c.quota, c.budget, c.cap, c.cap_bucket,"
            " c.perks, e.decision, c.customer_id, e.customer_id"
            " FROM claims AS c JOIN events AS e ON e.id = c.event_id ORDER BY c.event_id"
        )
    ).fetchall()  # read before writing: the rows being read join the table being updated
    update = sa.text("UPDATE events SET claims = :claims WHERE id = :id")
    pending: list[dict[str, str]] = []
    for event_id, group in _by_event(rows):
        rank = {o["mechanic_id"]: i for i, o in enumerate(json.loads(group[0][8])["outcomes"])}
        group.sort(key=lambda r: rank.get(r[1], len(rank)))
        stored = [
            [
                mechanic_id,
                _money(cost),
                quota,
                None if budget is None else _money(budget),
                cap,
                bucket,
                [p for p in perks.split(",") if p],
                None if whose == own else whose,
            ]
            for _, mechanic_id, cost, quota, budget, cap, bucket, perks, _, whose, own in group
        ]
        pending.append({"id": event_id, "claims": json.dumps(stored, separators=(",", ":"))})
        if len(pending) >= CHUNK:
            bind.execute(update, pending)
            pending = []
    if pending:
        bind.execute(update, pending)


def _by_event(rows: Any) -> Iterator[tuple[str, list[Any]]]:
    head: str | None = None
    group: list[Any] = []
    for row in rows:
        if row[0] != head:
            if head is not None:
                yield head, group
            head, group = row[0], []
        group.append(tuple(row))
    if head is not None:
        yield head, group


def _money(value: Any) -> str:
    return f"{Decimal(value):f}"


def _create_tables() -> None:
    """The ledger and claims tables exactly as revision 0001 made them."""
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


def _unfold() -> None:
    """Fill the recreated tables from each event's decision grants and claims column."""
    bind = op.get_bind()
    sqlite = _sqlite()
    ledger = sa.table(
        "ledger",
        *(sa.column(n) for n in ("id", "event_id", "mechanic_id", "customer_id", "kind")),
        *(sa.column(n) for n in ("asset", "at", "points", "quantity", "attributes")),
        sa.column("refers_to"),
        sa.column("cost", MONEY),
    )
    claims = sa.table(
        "claims",
        *(sa.column(n) for n in ("event_id", "mechanic_id", "customer_id", "quota", "cap")),
        *(sa.column(n) for n in ("cap_bucket", "perks")),
        sa.column("cost", MONEY),
        sa.column("budget", MONEY),
    )
    rows = bind.execute(
        sa.text("SELECT id, customer_id, decision, claims FROM events ORDER BY seq")
    )
    entries: list[dict[str, Any]] = []
    taken: list[dict[str, Any]] = []
    for event_id, customer_id, decision, stored in rows:
        for g in json.loads(decision)["grants"]:
            at = datetime.fromisoformat(g["at"]).astimezone(UTC)
            entries.append(
                {
                    "id": g["id"],
                    "event_id": event_id,
                    "mechanic_id": g["mechanic_id"],
                    "customer_id": g["customer_id"],
                    "kind": g["kind"],
                    "asset": g["asset"],
                    "at": at.replace(tzinfo=None) if sqlite else at,
                    "points": g["points"],
                    "quantity": g["quantity"],
                    "cost": _typed_money(g["cost"], sqlite),
                    "attributes": json.dumps(g["attributes"], separators=(",", ":")),
                    "refers_to": g["refers_to"],
                }
            )
        for mechanic_id, cost, quota, budget, cap, bucket, perks, whose in json.loads(stored):
            taken.append(
                {
                    "event_id": event_id,
                    "mechanic_id": mechanic_id,
                    "customer_id": whose or customer_id,
                    "cost": _typed_money(cost, sqlite),
                    "quota": quota,
                    "budget": None if budget is None else _typed_money(budget, sqlite),
                    "cap": cap,
                    "cap_bucket": bucket,
                    "perks": ",".join(perks),
                }
            )
        if len(entries) >= CHUNK or len(taken) >= CHUNK:
            _insert(ledger, entries)
            _insert(claims, taken)
            entries, taken = [], []
    _insert(ledger, entries)
    _insert(claims, taken)


def _typed_money(value: str, sqlite: bool) -> str | Decimal:
    return value if sqlite else Decimal(value)


def _insert(table: Any, rows: list[dict[str, Any]]) -> None:
    if rows:
        op.bulk_insert(table, rows)
