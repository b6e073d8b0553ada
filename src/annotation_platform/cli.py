"""The `annotation-platform` command: serve, migrate, create users, seed a demo."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.config import ConfigurationError, Settings, get_settings
from annotation_platform.core.crypto import KeyRingError, generate_key_entry
from annotation_platform.core.db import create_engine, create_sessionmaker
from annotation_platform.core.errors import AppError
from annotation_platform.observability.logs import configure_logging, ip_pseudonym, ip_pseudonym_key

T = TypeVar("T")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if getattr(args, "without_settings", False):
        return int(args.handler(args))
    try:
        settings = get_settings()
        configure_logging(settings)
        return int(args.handler(settings, args) or 0)
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except AppError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        for message in {str(error.get("msg")) for error in exc.errors or []} - {exc.detail}:
            print(f"  {message}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="annotation-platform", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve the API (HOST, PORT from the environment)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--reload", action="store_true", help="restart on code changes (development)")
    serve.add_argument(
        "--prod",
        action="store_true",
        help="several worker processes under gunicorn, graceful shutdown (configured by deploy/gunicorn.conf.py)",
    )
    serve.add_argument("--config", type=Path, help="gunicorn config for --prod (default: deploy/gunicorn.conf.py)")
    serve.set_defaults(handler=_serve)

    db = commands.add_parser("db", help="database migrations").add_subparsers(required=True, metavar="ACTION")
    db.add_parser("upgrade", help="apply every pending migration").set_defaults(handler=_db_upgrade)
    db.add_parser("current", help="show the database's revision").set_defaults(handler=_db_current)

    users = commands.add_parser("users", help="accounts").add_subparsers(required=True, metavar="ACTION")
    create = users.add_parser("create", help="create an account")
    create.add_argument("--email", required=True)
    create.add_argument("--password", help="prompted for when omitted")
    create.add_argument("--username")
    create.add_argument("--superuser", action="store_true")
    create.set_defaults(handler=_users_create)

    seed = commands.add_parser("seed", help="load example data")
    seed.add_argument("--demo", action="store_true", required=True, help="a demo project with chat rooms")
    seed.set_defaults(handler=_seed_demo)

    backup = commands.add_parser("backup", help="database backups (see docs/backups.md)")
    backups = backup.add_subparsers(required=True, metavar="ACTION")
    backups.add_parser("create", help="back up the database now, into BACKUP_DIR").set_defaults(handler=_backup_create)
    backups.add_parser("list", help="the backups kept, oldest first").set_defaults(handler=_backup_list)
    verify = backups.add_parser("verify", help="recompute a backup's checksum and read it as its format")
    verify.add_argument("backup", metavar="ID|PATH")
    verify.set_defaults(handler=_backup_verify)
    restore = backups.add_parser("restore", help="restore a backup into the configured, EMPTY database")
    restore.add_argument("backup", metavar="ID|PATH")
    restore.set_defaults(handler=_backup_restore)

    logs = commands.add_parser("logs", help="reading the logs").add_subparsers(required=True, metavar="ACTION")
    ip_ref = logs.add_parser("ip-ref", help="the pseudonym that stands for an IP address in the logs")
    ip_ref.add_argument("address")
    ip_ref.set_defaults(handler=_logs_ip_ref)

    keys = commands.add_parser("keys", help="the key ring for data encrypted at rest (ENCRYPTION_KEYS)")
    key_actions = keys.add_subparsers(required=True, metavar="ACTION")
    generate = key_actions.add_parser(
        "generate", help="print a new `id:key` entry; put it first in ENCRYPTION_KEYS to make it the current key"
    )
    generate.add_argument("--id", dest="key_id", help="the key's id (default: random)")
    generate.set_defaults(handler=_keys_generate, without_settings=True)
    status = key_actions.add_parser(
        "status", help="how many stored values and files each key id encrypted, per table and column"
    )
    status.add_argument("--json", action="store_true", help="print the counts as JSON")
    status.set_defaults(handler=_keys_status)
    key_actions.add_parser(
        "rotate",
        help="queue the re-encryption, with the current (first) key, of everything older keys made (a worker runs it)",
    ).set_defaults(handler=_keys_rotate)
    return parser


def _logs_ip_ref(settings: Settings, args: argparse.Namespace) -> int:
    """Logs carry keyed pseudonyms, not addresses; an operator looking for one source searches for this."""
    try:
        print(ip_pseudonym(args.address, ip_pseudonym_key(settings.resolved_secret_key())))
    except ValueError:
        print(f"error: {args.address!r} is not an IP address", file=sys.stderr)
        return 2
    return 0


def _keys_generate(args: argparse.Namespace) -> int:
    """Needs no settings: it is how production gets its first ENCRYPTION_KEYS."""
    try:
        print(generate_key_entry(args.key_id))
    except KeyRingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _keys_status(settings: Settings, args: argparse.Namespace) -> int:
    """Exit status 0 when everything is encrypted with the current key, 1 when some is not (yet)."""
    from annotation_platform.key_rotation.service import key_rotation_service

    key_ring = settings.resolved_key_ring()
    found = run_in_session(settings, lambda s: key_rotation_service.status(s, key_ring=key_ring, settings=settings))
    if args.json:
        print(json.dumps(found, indent=2, sort_keys=True))
    else:
        print(f"current key: {found['current']}   ring: {', '.join(found['ring'])}")
        for name, counts in found["columns"].items():
            cells = ", ".join(f"{key_id}: {count}" for key_id, count in sorted(counts.items())) or "-"
            print(f"  {name:<40} {cells}")
        cells = ", ".join(f"{key_id}: {count}" for key_id, count in sorted(found["files"].items())) or "-"
        print(f"  {'sealed files (snapshots, exports)':<40} {cells}")
    used = {key_id for counts in found["columns"].values() for key_id in counts} | set(found["files"])
    for key_id in sorted(used - set(found["ring"])):
        print(f"warning: key {key_id} is not in ENCRYPTION_KEYS: its values cannot be read", file=sys.stderr)
    return 0 if used <= {found["current"]} else 1


def _keys_rotate(settings: Settings, _args: argparse.Namespace) -> None:
    from annotation_platform.key_rotation.service import ROTATE_TASK, key_rotation_service

    key_rotation_service.enqueue(settings)
    print(f"queued {ROTATE_TASK}: a worker re-encrypts with key {settings.resolved_key_ring().current_key_id}")
    print("  follow it with: annotation-platform keys status")


def _serve(settings: Settings, args: argparse.Namespace) -> None:
    host, port = args.host or settings.host, args.port or settings.port
    if args.prod:
        config = args.config or find_gunicorn_config()
        # exec: gunicorn takes this process's place, so SIGTERM from the container runtime reaches it directly.
        command = [sys.executable, "-m", "gunicorn", "--config", str(config), "--bind", f"{host}:{port}"]
        os.execv(sys.executable, command)  # noqa: S606 - our own interpreter, fixed arguments  # nosec B606
    import uvicorn

    uvicorn.run(
        "annotation_platform.main:create_app",
        factory=True,
        host=host,
        port=port,
        reload=args.reload,
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=settings.trusted_proxies,
        access_log=False,
        log_config=None,
        log_level=settings.log_level.lower(),
    )


GUNICORN_CONFIG = Path("deploy") / "gunicorn.conf.py"


def find_gunicorn_config() -> Path:
    """`./deploy/gunicorn.conf.py` (the image's /app), else the source checkout this package was installed from."""
    source_root = Path(__file__).resolve().parents[2]
    for candidate in (Path.cwd() / GUNICORN_CONFIG, source_root / GUNICORN_CONFIG):
        if candidate.is_file():
            return candidate
    raise ConfigurationError(f"{GUNICORN_CONFIG} not found: run from the project directory or pass --config PATH")


def _db_upgrade(settings: Settings, _args: argparse.Namespace) -> None:
    from annotation_platform.core.migrations import upgrade_to_head

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade_to_head(settings)


def _db_current(settings: Settings, _args: argparse.Namespace) -> None:
    from annotation_platform.core.migrations import current_revisions, head_revisions

    async def current() -> set[str]:
        engine = create_engine(settings)
        try:
            async with engine.connect() as connection:
                return await current_revisions(connection)
        finally:
            await engine.dispose()

    print(f"database: {', '.join(sorted(asyncio.run(current()))) or 'empty'}")
    print(f"code:     {', '.join(sorted(head_revisions()))}")


def _users_create(settings: Settings, args: argparse.Namespace) -> None:
    from annotation_platform.user.service import user_service

    password = args.password or getpass.getpass("Password: ")

    async def create(session: AsyncSession) -> str:
        user = await user_service.register(
            session,
            settings,
            email=args.email,
            password=password,
            username=args.username,
            is_superuser=args.superuser,
            is_verified=True,
        )
        kind = "superuser" if user.is_superuser else "user"
        return f"created {kind} {user.email} (username {user.username}, id {user.id})"

    print(run_in_session(settings, create))


def _seed_demo(settings: Settings, _args: argparse.Namespace) -> None:
    from annotation_platform.demo.service import seed_demo

    print(run_in_session(settings, lambda session: seed_demo(session, settings)))


def _backup_create(settings: Settings, _args: argparse.Namespace) -> None:
    from annotation_platform.backup.service import backup_service

    async def create() -> str:
        engine = create_engine(settings)
        try:
            backup = await backup_service.take(create_sessionmaker(engine), settings=settings, created_by=None)
        finally:
            await engine.dispose()
        path = settings.resolved_backup_dir / backup.filename
        return f"backup {backup.id}: {path} ({backup.size_bytes} bytes, sha256 {backup.sha256})"

    print(asyncio.run(create()))


def _backup_list(settings: Settings, _args: argparse.Namespace) -> int:
    from sqlalchemy.exc import DBAPIError

    from annotation_platform.backup.service import backup_service

    try:
        backups = run_in_session(settings, backup_service.list_all)
    except DBAPIError as exc:
        print(f"error: cannot read the backups table ({exc.orig}); is the database migrated?", file=sys.stderr)
        return 1
    for backup in backups:
        print(f"{backup.id}  {backup.created_at:%Y-%m-%d %H:%M:%S}Z  {backup.size_bytes:>12}  {backup.filename}")
    print(f"{len(backups)} backup(s) in {settings.resolved_backup_dir}")
    return 0


def _backup_verify(settings: Settings, args: argparse.Namespace) -> None:
    from annotation_platform.backup.service import backup_service

    verified = asyncio.run(backup_service.verify(settings, args.backup))
    recorded = ", ".join(verified.recorded_in) or "nothing recorded to compare with"
    print(f"ok: {verified.path} ({verified.size_bytes} bytes)")
    print(f"  sha256 {verified.sha256} (matches: {recorded})")
    print(f"  {verified.structure}")


def _backup_restore(settings: Settings, args: argparse.Namespace) -> None:
    from annotation_platform.backup.service import backup_service

    verified = asyncio.run(backup_service.restore(settings, args.backup))
    print(f"restored {verified.path} (sha256 {verified.sha256})")
    print("  if this code is newer than the backup, run: annotation-platform db upgrade")


def run_in_session(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Runs `work` in one transaction, committed when it returns."""

    async def run() -> T:
        engine = create_engine(settings)
        try:
            async with create_sessionmaker(engine)() as session, session.begin():
                return await work(session)
        finally:
            await engine.dispose()

    settings = settings.model_copy(update={"secret_key": settings.resolved_secret_key()})
    return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
