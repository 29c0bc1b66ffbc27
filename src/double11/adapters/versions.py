"""Reading the campaign versions a database has run, from outside a running server.

The embedded store's process owns its file (`double11 serve` holds a lock on it),
so `double11 versions` reads the table through a plain connection of its own, on
SQLite or PostgreSQL alike, and writes nothing.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, select

from double11.adapters.migrate import sync_url
from double11.adapters.schema import campaign_versions
from double11.engine.ports import CampaignVersion


def read_versions(db_url: str) -> list[CampaignVersion]:
    """Every campaign version the database at `db_url` has run, the first run first."""
    url = sync_url(db_url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        # Connecting would create an empty file where the operator mistyped a path.
        raise ValueError(f"no SQLite file at {url.database!r}")
    engine = create_engine(url)
    v = campaign_versions.c
    query = select(v.digest, v.campaign_id, v.source, v.loaded_at, v.loaded_by).order_by(
        v.loaded_at, v.digest
    )
    try:
        with engine.connect() as connection:
            return [CampaignVersion(*row) for row in connection.execute(query)]
    finally:
        engine.dispose()
