"""The Alembic migrations: one head, a full round trip on an empty database, agreement with the models, file
names, and (from the second migration on) proof that every upgrade keeps the data already in the database.

Each test that touches a database gets a fresh, empty one: a file for SQLite, a throwaway database named after
TEST_POSTGRES_URL's (plus a random suffix) for PostgreSQL, dropped at the end.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import asyncpg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from annotation_platform.core.migrations import alembic_config
from annotation_platform.models import Base
from tests.conftest import in_ci, postgres_url
from tests.migrations.data_modules import DATA_DIR, load

INITIAL_REVISION = "9b0ff16de870"
FILE_NAME = re.compile(r"^(?P<stamp>\d{4}-\d{2}-\d{2}-\d{4})_(?P<slug>[a-z0-9]+(?:_[a-z0-9]+)*)\.py$")


def _config(url: str = "") -> Config:
    config = alembic_config(url)
    config.attributes["configure_logging"] = False
    return config


SCRIPT = ScriptDirectory.from_config(_config())
REVISIONS: list[Script] = list(reversed(list(SCRIPT.walk_revisions("base", "heads"))))  # oldest first
UPGRADES = [script.revision for script in REVISIONS if script.down_revision is not None]


# --- databases ----------------------------------------------------------------------------------------------------


async def _admin_connection() -> Any:
    parsed = make_url(postgres_url())
    return await asyncpg.connect(
        host=parsed.host, port=parsed.port or 5432, user=parsed.username, password=parsed.password, database="postgres"
    )


async def _create_postgres_database() -> str:
    """A new empty database beside TEST_POSTGRES_URL's; skips (fails under CI) when PostgreSQL is unreachable."""
    parsed = make_url(postgres_url())
    name = f"{parsed.database}_{uuid.uuid4().hex[:8]}"
    try:
        admin = await _admin_connection()
    except (OSError, asyncpg.PostgresError) as exc:
        reason = f"PostgreSQL not reachable at {parsed.render_as_string(hide_password=True)}: {exc}"
        if in_ci():
            pytest.fail(f"{reason} (CI=true: PostgreSQL is required)")
        pytest.skip(f"{reason}; set TEST_POSTGRES_URL to run these tests")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return parsed.set(database=name).render_as_string(hide_password=False)


async def _drop_postgres_database(url: str) -> None:
    admin = await _admin_connection()
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def empty_url(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of an empty database (no tables, no alembic_version) on `backend`."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'migrations.db'}"
        return
    url = await _create_postgres_database()
    try:
        yield url
    finally:
        await _drop_postgres_database(url)


@pytest.fixture
async def empty_engine(empty_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(empty_url, poolclass=NullPool)
    yield engine
    await engine.dispose()


async def alembic(url: str, action: Callable[..., None], revision: str) -> None:
    """Runs an Alembic command in a worker thread: the migrations' env.py runs its own event loop."""
    await asyncio.to_thread(action, _config(url), revision)


async def upgrade(url: str, revision: str = "head") -> None:
    await alembic(url, command.upgrade, revision)


async def downgrade(url: str, revision: str) -> None:
    await alembic(url, command.downgrade, revision)


async def table_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))


async def stored_revisions(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return {row[0] for row in await connection.execute(text("SELECT version_num FROM alembic_version"))}


async def triggers_and_functions(engine: AsyncEngine) -> set[str]:
    """The database objects outside the models' metadata that the migrations manage (offset triggers)."""
    async with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            rows = await connection.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))
        else:
            rows = await connection.execute(
                text(
                    "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal "
                    "UNION SELECT proname FROM pg_proc JOIN pg_namespace n ON n.oid = pronamespace "
                    "WHERE nspname = 'public'"
                )
            )
        return {row[0] for row in rows}


def _model_differences(connection: Connection) -> list[Any]:
    """What `alembic check` reports: the differences autogenerate would write into a new migration."""
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": False, "target_metadata": Base.metadata}
    )
    return list(compare_metadata(context, Base.metadata))


# --- the revision graph and the files -----------------------------------------------------------------------------


def test_there_is_exactly_one_head() -> None:
    assert len(SCRIPT.get_heads()) == 1, f"several heads {SCRIPT.get_heads()}: merge them with `alembic merge heads`"


def test_there_is_exactly_one_base_and_it_is_the_initial_schema() -> None:
    assert SCRIPT.get_bases() == [INITIAL_REVISION]


def test_migration_files_are_named_by_date_and_slug() -> None:
    files = sorted(path.name for path in (Path(SCRIPT.versions)).glob("*.py"))
    assert files, "no migration files found"
    for name in files:
        match = FILE_NAME.match(name)
        assert match, f"{name} is not named YYYY-MM-DD-HHMM_slug.py (see file_template in alembic.ini)"
        datetime.strptime(match["stamp"], "%Y-%m-%d-%H%M")  # noqa: DTZ007 - only checks that it is a real date
    assert sorted(Path(script.path).name for script in REVISIONS) == files, "a file in versions/ is not a revision"


def test_every_migration_file_is_dated_after_its_parents() -> None:
    """The date prefix is there so `ls` shows history: a file dated before its parent was renamed by hand."""
    for script in REVISIONS:
        for parent in SCRIPT.get_revisions(script.down_revision):
            assert parent is not None
            assert Path(parent.path).name < Path(script.path).name, f"{script.path} sorts before {parent.path}"


# --- round trip and agreement with the models ---------------------------------------------------------------------


async def test_upgrade_head_on_an_empty_database_creates_every_table(empty_url: str, empty_engine: AsyncEngine) -> None:
    assert await table_names(empty_engine) == set()

    await upgrade(empty_url)

    assert await table_names(empty_engine) == set(Base.metadata.tables) | {"alembic_version"}
    assert await stored_revisions(empty_engine) == set(SCRIPT.get_heads())
    assert await triggers_and_functions(empty_engine), "the offset triggers were not created"


async def test_downgrade_base_removes_everything_and_upgrade_head_works_again(
    empty_url: str, empty_engine: AsyncEngine
) -> None:
    await upgrade(empty_url)

    await downgrade(empty_url, "base")

    assert await table_names(empty_engine) <= {"alembic_version"}
    assert await triggers_and_functions(empty_engine) == set()
    if await table_names(empty_engine):
        assert await stored_revisions(empty_engine) == set()

    await upgrade(empty_url)

    assert await table_names(empty_engine) == set(Base.metadata.tables) | {"alembic_version"}
    assert await stored_revisions(empty_engine) == set(SCRIPT.get_heads())


async def test_models_and_migrations_agree(empty_url: str, empty_engine: AsyncEngine) -> None:
    """`alembic check`: autogenerate against a migrated database finds nothing to write."""
    await upgrade(empty_url)

    async with empty_engine.connect() as connection:
        differences = await connection.run_sync(_model_differences)

    assert differences == [], "models and migrations differ; run `make migration m=...`:\n" + "\n".join(
        map(str, differences)
    )


# --- data survives every upgrade ----------------------------------------------------------------------------------


def _data_module(revision: str) -> ModuleType:
    path = DATA_DIR / f"{revision}.py"
    if not path.is_file():
        pytest.fail(
            f"migration {revision} has no data test: write tests/migrations/data/{revision}.py with "
            "seed(connection) and verify(connection) (see tests/migrations/data/README.md)"
        )
    module = load(revision)
    for name in ("seed", "verify"):
        assert callable(getattr(module, name, None)), f"{path} must define {name}(connection)"
    return module


@pytest.mark.parametrize("revision", UPGRADES)
async def test_upgrade_keeps_the_data(revision: str, empty_url: str, empty_engine: AsyncEngine) -> None:
    """Fill a database at the previous revision, upgrade it to `revision`, check that nothing was lost."""
    data = _data_module(revision)
    previous = SCRIPT.get_revision(revision).down_revision
    for parent in (previous,) if isinstance(previous, str) else tuple(previous or ()):
        await upgrade(empty_url, parent)
    async with empty_engine.begin() as connection:
        await connection.run_sync(data.seed)

    await upgrade(empty_url, revision)

    async with empty_engine.connect() as connection:
        await connection.run_sync(data.verify)


def test_every_revision_but_the_initial_one_needs_a_data_test() -> None:
    """While the initial revision is the only one, test_upgrade_keeps_the_data has no parameters (pytest reports it
    skipped): this shows that is the only reason, so the rule starts biting with the second migration."""
    assert [script.revision for script in REVISIONS if script.revision not in UPGRADES] == [INITIAL_REVISION]
    if not UPGRADES:
        assert [script.revision for script in REVISIONS] == [INITIAL_REVISION]


def test_data_modules_name_existing_revisions() -> None:
    """A data module named after a slug or a deleted revision would never run: refuse it."""
    known = {script.revision for script in REVISIONS}
    orphans = sorted(path.stem for path in DATA_DIR.glob("*.py") if path.stem not in known)
    assert orphans == [], f"tests/migrations/data has modules for unknown revisions: {orphans}"
    assert INITIAL_REVISION not in {path.stem for path in DATA_DIR.glob("*.py")}, "the initial revision has no data"
