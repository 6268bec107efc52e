"""Alembic environment: the engine is handed over by photovfs (see db.migrate), never read from ini."""

from __future__ import annotations

from alembic import context
from photovfs.catalog.models import Base
from sqlalchemy import create_engine

config = context.config
engine = config.attributes.get("engine")
if engine is None:  # `alembic revision --autogenerate` from a developer shell
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "sqlite:///dev-catalog.db")

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
