"""Finding and running the Alembic migrations from code (CLI, readiness probe, tests)."""

from __future__ import annotations

import os
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from annotation_platform.config import Settings

_SOURCE_ROOT = Path(__file__).resolve().parents[3]


class MigrationsNotFound(RuntimeError):
    pass


def find_alembic_ini() -> Path:
    """`ALEMBIC_CONFIG`, else `./alembic.ini`, else the source checkout this package was installed from."""
    candidates = [Path(os.environ["ALEMBIC_CONFIG"])] if os.environ.get("ALEMBIC_CONFIG") else []
    candidates += [Path.cwd() / "alembic.ini", _SOURCE_ROOT / "alembic.ini"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    raise MigrationsNotFound("alembic.ini not found: run from the project directory or set ALEMBIC_CONFIG to its path.")


def alembic_config(database_url: str) -> Config:
    ini = find_alembic_ini()
    config = Config(str(ini))
    config.set_main_option("script_location", str(ini.parent / "migrations"))
    config.attributes["database_url"] = database_url
    return config


def head_revisions() -> set[str]:
    script = ScriptDirectory.from_config(alembic_config(""))
    return set(script.get_heads())


async def current_revisions(connection: AsyncConnection) -> set[str]:
    result = await connection.execute(text("SELECT version_num FROM alembic_version"))
    return {row[0] for row in result}


def upgrade_to_head(settings: Settings) -> None:
    from alembic import command

    command.upgrade(alembic_config(settings.resolved_database_url), "head")
