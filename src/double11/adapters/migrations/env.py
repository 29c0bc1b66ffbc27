"""Alembic's entry point for double11's migrations, run by `double11.adapters.migrate`.

`migrate.upgrade` hands a connection in `config.attributes["connection"]`, inside
a transaction it owns. Offline mode (`--sql`) renders the SQL for the URL in the
configuration, for a database administrator to review and run.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from double11.adapters.schema import declared_on, metadata

config = context.config


def run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online(connection: Connection) -> None:
    dialect = connection.dialect.name

    def include(item: object, _name: object, _type: str, reflected: bool, _other: object) -> bool:
        # For autogenerate: an index the schema declares for another dialect only.
        return reflected or declared_on(item, dialect)

    context.configure(connection=connection, target_metadata=metadata, include_object=include)
    # The caller's connection is already in its transaction, so this begins none.
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    given = config.attributes.get("connection")
    if not isinstance(given, Connection):
        raise RuntimeError("run migrations through double11.adapters.migrate.upgrade")
    run_online(given)
