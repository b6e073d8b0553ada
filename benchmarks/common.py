"""What the benchmarks share: a fresh database to measure on."""

from __future__ import annotations

import asyncpg
from sqlalchemy.engine import make_url


async def recreate_database(database_url: str) -> None:
    """Drops and creates the database of `database_url` (a benchmark's own, never the service's)."""
    url = make_url(database_url)
    admin = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, password=url.password, database="postgres"
    )
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{url.database}"')
    finally:
        await admin.close()
