"""Backup files themselves: taking one (pg_dump, SQLite's online backup API), checking one, restoring one.

Blocking work (external tools, file copies, hashing): callers run these functions in a thread. PostgreSQL's
password goes to the tools through the `PGPASSWORD` environment variable, never on a command line or in a log.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess  # runs pg_config, pg_dump and pg_restore, with argument lists  # nosec B404
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from annotation_platform.config import Settings
from annotation_platform.core.errors import AppError, Conflict, NotFound, ServiceUnavailable

POSTGRESQL = "postgresql"
SQLITE = "sqlite"
EXTENSIONS = {POSTGRESQL: "pgdump", SQLITE: "sqlite3"}
CHECKSUM_SUFFIX = ".sha256"
PARTIAL_SUFFIX = ".partial"
_MAGIC = {POSTGRESQL: b"PGDMP", SQLITE: b"SQLite format 3\x00"}
_CHUNK = 1024 * 1024
_STDERR_TAIL = 2000
# How often a running dump looks at its stop flag; SQLite copies this many pages between looks.
_STOP_POLL_SECONDS = 0.2
_SQLITE_PAGES_A_STEP = 1024


class BackupFailed(AppError):
    status = 500
    code = "backup_failed"
    title = "Backup failed"
    description = "The database could not be copied; the message says why."


class DumpCancelled(Exception):
    """The dump was stopped on request; its partial file is gone."""


class BackupToolMissing(ServiceUnavailable):
    code = "backup_tool_missing"
    title = "Backup tool missing"
    description = "pg_dump or pg_restore is not installed where the backup runs."


class BackupNotFound(NotFound):
    code = "backup_not_found"
    title = "No such backup"
    description = "No backup with this id or path."


class BackupCorrupt(Conflict):
    code = "backup_corrupt"
    title = "Backup corrupt"
    description = "The file does not match its recorded checksum, or its format check failed."


class DatabaseNotEmpty(Conflict):
    code = "database_not_empty"
    title = "Database not empty"
    description = "A backup is restored only into an empty database."


@dataclass(frozen=True)
class Database:
    """Where the settings' database is, as the tools need it."""

    backend: str
    path: Path | None = None  # SQLite
    host: str = "localhost"
    port: int = 5432
    user: str | None = None
    password: str | None = None
    name: str = ""
    sslmode: str | None = None

    @property
    def file(self) -> Path:
        """The SQLite database's file."""
        if self.path is None:
            raise BackupFailed("Not an SQLite database.")
        return self.path

    @property
    def label(self) -> str:
        return str(self.path) if self.backend == SQLITE else f"{self.name} on {self.host}:{self.port}"


def database_of(settings: Settings) -> Database:
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == SQLITE:
        if not url.database or url.database == ":memory:":
            raise BackupFailed("An in-memory SQLite database cannot be backed up.")
        return Database(SQLITE, path=Path(url.database).resolve())
    sslmode = url.query.get("sslmode") or url.query.get("ssl")
    return Database(
        POSTGRESQL,
        host=url.host or "localhost",
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        name=url.database or "",
        sslmode=str(sslmode) if isinstance(sslmode, str) else None,
    )


# --- PostgreSQL tools -----------------------------------------------------------------------------------------


def pg_tool(name: str) -> str:
    """`name` from `pg_config --bindir` (the installed server's version), else from PATH."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            bindir = subprocess.run(  # noqa: S603 - pg_config found on PATH, fixed arguments  # nosec B603
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            )
            candidate = Path(bindir.stdout.strip()) / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
        except (OSError, subprocess.SubprocessError):
            pass
    found = shutil.which(name)
    if found is None:
        raise BackupToolMissing(
            f"{name} not found (neither in `pg_config --bindir` nor on PATH): install the PostgreSQL client tools "
            "of the server's version, e.g. `apt-get install postgresql-client`."
        )
    return found


def _pg_connection(database: Database) -> tuple[list[str], dict[str, str]]:
    """Command-line options (no password) and the environment (with PGPASSWORD) for one of the pg tools."""
    options = ["--host", database.host, "--port", str(database.port), "--no-password"]
    if database.user:
        options += ["--username", database.user]
    env = dict(os.environ)
    env.pop("PGPASSWORD", None)
    if database.password:
        env["PGPASSWORD"] = database.password
    if database.sslmode:
        env["PGSSLMODE"] = database.sslmode
    return options, env


def _run(command: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # An argument list (no shell), built by this module from settings, never from request input.
    return subprocess.run(command, capture_output=True, text=True, env=env, check=False)  # noqa: S603  # nosec B603


def _failure(tool: str, result: subprocess.CompletedProcess[str]) -> str:
    return f"{tool} exited with {result.returncode}: {result.stderr.strip()[-_STDERR_TAIL:]}"


# --- taking a backup --------------------------------------------------------------------------------------------


def dump(
    database: Database, destination: Path, busy_timeout_seconds: float = 30, stop: threading.Event | None = None
) -> None:
    """Writes a consistent copy of the database to `destination` (a new file).

    Setting `stop` (from another thread) ends the dump within a fraction of a second: DumpCancelled, no file."""
    stop = stop or threading.Event()
    if database.backend == POSTGRESQL:
        options, env = _pg_connection(database)
        command = [pg_tool("pg_dump"), "--format=custom", f"--file={destination}", *options, database.name]
        returncode, stderr = _run_stoppable(command, env, stop)
        if stop.is_set():
            destination.unlink(missing_ok=True)
            raise DumpCancelled()
        if returncode != 0:
            destination.unlink(missing_ok=True)
            raise BackupFailed(f"pg_dump exited with {returncode}: {stderr.strip()[-_STDERR_TAIL:]}")
        return
    if not database.file.exists():
        raise BackupFailed(f"The SQLite database {database.file} does not exist.")

    def stop_if_asked(_status: int, _remaining: int, _total: int) -> None:
        if stop.is_set():
            raise DumpCancelled()

    # The online backup API copies a consistent snapshot while other connections keep reading and writing.
    source = sqlite3.connect(database.file, timeout=busy_timeout_seconds)
    try:
        target = sqlite3.connect(destination)
        try:
            source.backup(target, pages=_SQLITE_PAGES_A_STEP, progress=stop_if_asked)
            # A self-contained file: no -wal beside it is needed to read it.
            target.execute("PRAGMA journal_mode=DELETE")
        finally:
            target.close()
    except (sqlite3.Error, DumpCancelled) as exc:
        destination.unlink(missing_ok=True)
        if isinstance(exc, DumpCancelled):
            raise
        raise BackupFailed(f"SQLite backup failed: {exc}") from exc
    finally:
        source.close()


def _run_stoppable(command: list[str], env: dict[str, str], stop: threading.Event) -> tuple[int, str]:
    """Runs `command`, terminating it once `stop` is set; its exit code and stderr (kept in a file, so a
    talkative tool cannot fill a pipe and hang)."""
    with tempfile.TemporaryFile(mode="w+") as stderr:
        # An argument list (no shell), built by this module from settings, never from request input.
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr, text=True)  # noqa: S603  # nosec B603
        while True:
            try:
                returncode = process.wait(timeout=_STOP_POLL_SECONDS)
                break
            except subprocess.TimeoutExpired:
                if stop.is_set():
                    process.terminate()
                    try:
                        returncode = process.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        returncode = process.wait()
                    break
        stderr.seek(0)
        return returncode, stderr.read()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_checksum_file(path: Path, sha256: str) -> None:
    """`<file>.sha256` in `sha256sum` format, so the file can be checked without the database."""
    path.with_name(path.name + CHECKSUM_SUFFIX).write_text(f"{sha256}  {path.name}\n")


def read_checksum_file(path: Path) -> str | None:
    sidecar = path.with_name(path.name + CHECKSUM_SUFFIX)
    if not sidecar.is_file():
        return None
    return sidecar.read_text().split(maxsplit=1)[0].strip().lower() or None


def remove_files(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.with_name(path.name + CHECKSUM_SUFFIX).unlink(missing_ok=True)


# --- checking and restoring ---------------------------------------------------------------------------------------


def format_of(path: Path) -> str | None:
    """`postgresql` (a pg_dump custom-format file), `sqlite`, or None, from the file's first bytes."""
    with path.open("rb") as file:
        head = file.read(16)
    for backend, magic in _MAGIC.items():
        if head.startswith(magic):
            return backend
    return None


def check_structure(path: Path) -> str:
    """Reads the file as its format: `pg_restore --list` or `PRAGMA integrity_check`. Returns what was checked."""
    backend = format_of(path)
    if backend == POSTGRESQL:
        result = _run([pg_tool("pg_restore"), "--list", str(path)])
        if result.returncode != 0:
            raise BackupCorrupt(f"{path.name}: {_failure('pg_restore --list', result)}")
        return "pg_restore --list succeeded"
    if backend == SQLITE:
        try:
            connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
            try:
                rows = connection.execute("PRAGMA integrity_check").fetchall()
            finally:
                connection.close()
        except sqlite3.DatabaseError as exc:
            raise BackupCorrupt(f"{path.name}: SQLite integrity check failed: {exc}") from exc
        if rows != [("ok",)]:
            problems = "; ".join(str(row[0]) for row in rows[:5])
            raise BackupCorrupt(f"{path.name}: SQLite integrity check failed: {problems}")
        return "PRAGMA integrity_check: ok"
    raise BackupCorrupt(f"{path.name} is neither a pg_dump custom-format file nor an SQLite database.")


def sqlite_has_tables(path: Path) -> bool:
    if not path.exists():
        return False
    connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return bool(connection.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0])
    finally:
        connection.close()


def restore(database: Database, path: Path) -> None:
    """Loads the backup into the (empty) database: pg_restore in one transaction, or the SQLite file copied in."""
    if database.backend == POSTGRESQL:
        options, env = _pg_connection(database)
        command = [
            pg_tool("pg_restore"),
            "--no-owner",
            "--exit-on-error",
            "--single-transaction",
            *options,
            "--dbname",
            database.name,
            str(path),
        ]
        result = _run(command, env)
        if result.returncode != 0:
            raise BackupFailed(_failure("pg_restore", result))
        return
    target = database.file
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + PARTIAL_SUFFIX)
    shutil.copyfile(path, partial)
    for leftover in ("-wal", "-shm", "-journal"):
        target.with_name(target.name + leftover).unlink(missing_ok=True)
    os.replace(partial, target)
