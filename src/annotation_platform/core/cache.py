"""The read cache: hot look-ups (who is calling, through a login session or an API key; a project or container
with the caller's role; item and annotation pages) kept in Redis when `REDIS_URL` is set, in an in-process LRU
otherwise.

Invalidation is by generations. Every entry belongs to scopes (`p:<project id>`, `c:<container id>`,
`a:<container id>` for the container's annotations, `auth`, and always `*`), each with a counter. An entry
stores the counters it was read under and is ignored once any of them moved. The counters move after a commit
that wrote a row of the scope: session events (installed once, for every session, in API and worker processes
alike) collect the scopes from the ORM unit of work and from INSERT / UPDATE / DELETE statements, and bump them
when the transaction commits, before the response is sent. A write whose scope cannot be told (a textual
statement, an UPDATE without the key in its WHERE) bumps `*`, which retires every entry; so does deleting a
user (the database clears the author of their annotations). The counters are shared by every process, so a
write in one (an API process, a worker's import) is seen by the next read in any other: in Redis, or without
Redis in a memory-mapped file in DATA_DIR (`SharedGenerations`; the embedded default runs on one host), beside
each process's own LRU of entries.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import hashlib
import logging
import mmap
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson
import redis
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, class_mapper
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BinaryExpression, BindParameter, TextClause
from sqlalchemy.sql.operators import eq
from sqlalchemy.util.concurrency import await_only, in_greenlet

from annotation_platform.config import Settings

logger = logging.getLogger(__name__)

CACHE_INFO_KEY = "annotation_platform.cache"
_PREFETCH_KEY = "annotation_platform.cache_prefetch"
_DIRTY_KEY = "annotation_platform.cache_dirty"
EVERYTHING = "*"
AUTH = "auth"
_GEN_PREFIX = "apc:gen:"
_ENTRY_PREFIX = "apc:e:"

ModelT = TypeVar("ModelT")


def project_scope(project_id: uuid.UUID) -> str:
    return f"p:{project_id}"


def container_scope(container_id: uuid.UUID) -> str:
    return f"c:{container_id}"


def annotation_scope(container_id: uuid.UUID) -> str:
    """The annotations of a container: their writes retire annotation pages, not the container's item pages."""
    return f"a:{container_id}"


class Cache:
    """Entries are bytes under a key, valid while the generations of their scopes have not moved."""

    def __init__(self, ttl_seconds: int) -> None:
        self.ttl_seconds = ttl_seconds

    async def lookup(self, key: str, scopes: Sequence[str]) -> tuple[bytes | None, list[int]]:
        """The entry if still valid, and the current generations (store a fresh read under these)."""
        all_scopes = [EVERYTHING, *scopes]
        stored, generations = await self._fetch(key, all_scopes)
        return _valid(stored, generations), generations

    async def lookup_many(
        self, wanted: Sequence[tuple[str, Sequence[str]]]
    ) -> dict[str, tuple[bytes | None, list[int]]]:
        """`lookup` of several entries (Redis: in one round trip)."""
        return {key: await self.lookup(key, scopes) for key, scopes in wanted}

    async def store(self, key: str, generations: Sequence[int], payload: bytes) -> None:
        await self._put(key, _header(generations) + b"\n" + payload)

    async def _fetch(self, key: str, scopes: Sequence[str]) -> tuple[bytes | None, list[int]]:
        raise NotImplementedError

    async def _put(self, key: str, value: bytes) -> None:
        raise NotImplementedError

    def bump(self, scopes: Iterable[str]) -> None:
        """Moves the scopes' generations; called right after a commit (synchronously, inside it)."""
        raise NotImplementedError

    async def close(self) -> None:
        """Releases connections."""


def _valid(stored: bytes | None, generations: Sequence[int]) -> bytes | None:
    if stored is None:
        return None
    header, _, payload = stored.partition(b"\n")
    return payload if header == _header(generations) else None


def _header(generations: Sequence[int]) -> bytes:
    return b",".join(str(generation).encode() for generation in generations)


class SharedGenerations:
    """Generation counters every process of this host sees, without a server: a memory-mapped file of
    GENERATION_SLOTS 8-byte slots. A scope hashes to a slot (two scopes sharing one only retire each other's
    entries early); a bump writes a fresh random value, so two processes bumping at once cannot lose a bump the
    way two increments could."""

    SLOTS = 1 << 16
    SLOT_BYTES = 8

    def __init__(self, path: Path) -> None:
        size = self.SLOTS * self.SLOT_BYTES
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(descriptor).st_size < size:
                os.ftruncate(descriptor, size)
            self._map = mmap.mmap(descriptor, size)
        finally:
            os.close(descriptor)

    def _offset(self, scope: str) -> int:
        digest = hashlib.blake2b(scope.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little") % self.SLOTS * self.SLOT_BYTES

    def read(self, scopes: Sequence[str]) -> list[int]:
        found = []
        for scope in scopes:
            offset = self._offset(scope)
            found.append(int.from_bytes(self._map[offset : offset + self.SLOT_BYTES], "little"))
        return found

    def bump(self, scopes: Iterable[str]) -> None:
        for scope in scopes:
            offset = self._offset(scope)
            self._map[offset : offset + self.SLOT_BYTES] = os.urandom(self.SLOT_BYTES)

    def close(self) -> None:
        self._map.close()


class LocalCache(Cache):
    """An LRU of bounded size in this process, for when there is no Redis. Its generations are `shared` by the
    host's processes (the embedded default), or this process's own when none is given (a single process)."""

    def __init__(self, ttl_seconds: int, max_entries: int, shared: SharedGenerations | None = None) -> None:
        super().__init__(ttl_seconds)
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._generations: dict[str, int] = {}
        self._shared = shared
        self._lock = threading.Lock()

    async def _fetch(self, key: str, scopes: Sequence[str]) -> tuple[bytes | None, list[int]]:
        if self._shared is not None:
            generations = self._shared.read(scopes)
        else:
            generations = [self._generations.get(scope, 0) for scope in scopes]
        found = self._entries.get(key)
        if found is None or found[0] < time.monotonic():
            return None, generations
        self._entries.move_to_end(key)
        return found[1], generations

    async def _put(self, key: str, value: bytes) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic() + self.ttl_seconds, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def bump(self, scopes: Iterable[str]) -> None:
        if self._shared is not None:
            self._shared.bump(scopes)
            return
        with self._lock:
            for scope in scopes:
                self._generations[scope] = self._generations.get(scope, 0) + 1

    async def close(self) -> None:
        if self._shared is not None:
            self._shared.close()


class _ReadConnections:
    """The connections of the cache's reads, each one MGET: a write of the packed command and a read of the
    reply on a redis-py connection, which connects, authenticates and selects the database as the client does.
    The client's command path (its pool, retries, telemetry hooks, packing, and a task-creating timeout around
    each write and each read) cost about as much as the round trip itself: a sixth of a page served from the
    cache. One timeout covers the whole MGET. A connection that fails is closed; one that was idle is tried once
    more on a new connection (Redis may have closed it meanwhile)."""

    MAX_IDLE = 64

    def __init__(self, client: Redis, timeout_seconds: float) -> None:
        pool = client.connection_pool
        self._new_connection = functools.partial(
            pool.connection_class, **{**pool.connection_kwargs, "socket_timeout": None}
        )
        self._timeout_seconds = timeout_seconds
        self._idle: list[AbstractConnection] = []

    async def mget(self, names: Sequence[str]) -> list[bytes | None]:
        command = _packed_mget(names)
        try:
            async with asyncio.timeout(self._timeout_seconds):
                if self._idle:
                    try:
                        return await self._call(self._idle.pop(), command)
                    except redis.ConnectionError:
                        logger.debug("idle cache connection lost; reconnecting", exc_info=True)
                return await self._call(self._new_connection(), command)
        except TimeoutError as exc:
            raise redis.TimeoutError(f"no answer from Redis within {self._timeout_seconds} s") from exc

    async def _call(self, connection: AbstractConnection, command: bytes) -> list[bytes | None]:
        try:
            await connection.send_packed_command(command, check_health=False)
            values: list[bytes | None] = await connection.read_response(disable_decoding=True)
        except BaseException:
            await connection.disconnect(nowait=True)
            raise
        if len(self._idle) < self.MAX_IDLE:
            self._idle.append(connection)
        else:
            await connection.disconnect()
        return values

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.disconnect()


def _packed_mget(names: Sequence[str]) -> bytes:
    encoded = [name.encode() for name in names]
    parts = [b"*%d\r\n$4\r\nMGET\r\n" % (len(encoded) + 1)]
    parts.extend(b"$%d\r\n%s\r\n" % (len(name), name) for name in encoded)
    return b"".join(parts)


class RedisCache(Cache):
    """Entries and generations in Redis: one MGET per look-up; generations shared by every process."""

    def __init__(self, url: str, ttl_seconds: int) -> None:
        super().__init__(ttl_seconds)
        self._async = Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        self._reads = _ReadConnections(self._async, timeout_seconds=1)
        # Bumps run inside the commit, which SQLAlchemy calls synchronously: from an AsyncSession they still await
        # the async client (`bump`); this blocking one serves plain Sessions and is the fallback.
        self._sync = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)

    async def _fetch(self, key: str, scopes: Sequence[str]) -> tuple[bytes | None, list[int]]:
        try:
            values = await self._reads.mget([*(_GEN_PREFIX + scope for scope in scopes), _ENTRY_PREFIX + key])
        except redis.RedisError:
            logger.warning("cache unavailable; reading the database", exc_info=True)
            return None, [-1] * len(scopes)  # never stored: -1 is no generation's value
        return values[-1], [int(value or 0) for value in values[:-1]]

    async def lookup_many(
        self, wanted: Sequence[tuple[str, Sequence[str]]]
    ) -> dict[str, tuple[bytes | None, list[int]]]:
        scope_names = list(dict.fromkeys(scope for _, scopes in wanted for scope in (EVERYTHING, *scopes)))
        names = [_GEN_PREFIX + scope for scope in scope_names] + [_ENTRY_PREFIX + key for key, _ in wanted]
        try:
            values = await self._reads.mget(names)
        except redis.RedisError:
            logger.warning("cache unavailable; reading the database", exc_info=True)
            return {key: (None, [-1] * (len(scopes) + 1)) for key, scopes in wanted}
        current = {scope: int(value or 0) for scope, value in zip(scope_names, values, strict=False)}
        found: dict[str, tuple[bytes | None, list[int]]] = {}
        for (key, scopes), entry in zip(wanted, values[len(scope_names) :], strict=True):
            generations = [current[scope] for scope in (EVERYTHING, *scopes)]
            found[key] = (_valid(entry, generations), generations)
        return found

    async def _put(self, key: str, value: bytes) -> None:
        if value.startswith(b"-1"):
            return
        try:
            await self._async.set(_ENTRY_PREFIX + key, value, ex=self.ttl_seconds)
        except redis.RedisError:
            logger.warning("cache unavailable; entry not stored", exc_info=True)

    def bump(self, scopes: Iterable[str]) -> None:
        """Inside an AsyncSession's commit (API requests, worker tasks) the round trip is awaited on the event
        loop through SQLAlchemy's greenlet bridge, so other requests go on meanwhile; a plain Session's commit,
        or an event loop the async client cannot use, falls back to the blocking client."""
        names = [_GEN_PREFIX + scope for scope in scopes]
        if not names:
            return
        if in_greenlet():
            try:
                await_only(self._bump_async(names))
                return
            except redis.RedisError:
                logger.warning("cache invalidation through the async client failed; retrying blocking", exc_info=True)
            except RuntimeError:  # the async client's connections belong to another (closed) event loop
                logger.debug("async cache client unusable here; bumping blocking", exc_info=True)
        try:
            pipeline = self._sync.pipeline(transaction=False)
            for name in names:
                pipeline.incr(name)
            pipeline.execute()
        except redis.RedisError:
            # The write is committed but cached reads of it may be stale until their TTL: say so loudly.
            logger.error("cache invalidation failed for %s", names, exc_info=True)

    async def _bump_async(self, names: list[str]) -> None:
        pipeline = self._async.pipeline(transaction=False)
        for name in names:
            pipeline.incr(name)
        await pipeline.execute()

    async def close(self) -> None:
        await self._reads.close()
        await self._async.aclose()
        self._sync.close()


def create_cache(settings: Settings) -> Cache | None:
    if not settings.cache_enabled:
        return None
    if settings.redis_url:
        return RedisCache(settings.redis_url, settings.cache_ttl_seconds)
    shared = SharedGenerations(settings.data_dir / "cache" / "generations")
    return LocalCache(settings.cache_ttl_seconds, settings.cache_local_max_entries, shared)


def cache_of(session: Any) -> Cache | None:
    """The cache of the session's process, if caching is on (an AsyncSession or a Session)."""
    cache: Cache | None = session.info.get(CACHE_INFO_KEY)
    return cache


async def prefetch(session: Any, wanted: Sequence[tuple[str, Sequence[str]]]) -> None:
    """Reads the entries a request is about to look up (key, scopes) in one round trip; `lookup` then answers
    from them. Their generations are read a little earlier than a lookup's own would be, which is the same as
    the request having started a little earlier: a write that commits in between is concurrent with it."""
    cache = cache_of(session)
    if cache is not None and wanted:
        found = await cache.lookup_many(wanted)
        session.info[_PREFETCH_KEY] = {key: (tuple(scopes), *found[key]) for key, scopes in wanted}


async def lookup(session: Any, cache: Cache, key: str, scopes: Sequence[str]) -> tuple[bytes | None, list[int]]:
    """`cache.lookup`, answered by the request's `prefetch` when it read this key with these scopes (once)."""
    prefetched = session.info.get(_PREFETCH_KEY)
    if prefetched:
        found = prefetched.pop(key, None)
        if found is not None and found[0] == tuple(scopes):
            return found[1], found[2]
    return await cache.lookup(key, scopes)


async def lookup_page(
    session: Any, cache: Cache, key: str, scopes: Sequence[str]
) -> tuple[tuple[bytes, str | None] | None, list[int]]:
    """A cached page of a list (its JSON body and next cursor) or None, and the generations to store it under."""
    cached, generations = await lookup(session, cache, key, scopes)
    if cached is None:
        return None, generations
    cursor, _, body = cached.partition(b"\n")
    return (body, cursor.decode() or None), generations


async def store_page(cache: Cache, key: str, generations: list[int], body: bytes, cursor: str | None) -> None:
    """Stores a page for `lookup_page`: its cursor on the first line, the body after it."""
    await cache.store(key, generations, (cursor or "").encode() + b"\n" + body)


# --- encoding rows ---------------------------------------------------------------------------------------------


def encode_row(instance: Any) -> dict[str, Any]:
    """An ORM instance's column values (JSON-ready via orjson), to rebuild a detached copy with `decode_row`."""
    return {attribute.key: getattr(instance, attribute.key) for attribute in class_mapper(type(instance)).column_attrs}


def decode_row(model: type[ModelT], values: dict[str, Any]) -> ModelT:
    """A detached instance from `encode_row`'s values, read back from JSON. The values go straight into the
    instance's dict, as SQLAlchemy's own loading does: the instrumented constructor cost a tenth of a cached page."""
    instance: ModelT = class_mapper(model).class_manager.new_instance()
    state = instance.__dict__
    for key, convert in _converters(model):
        value = values.get(key)
        state[key] = None if value is None else convert(value)
    return instance


_CONVERTERS: dict[type[Any], tuple[tuple[str, Callable[[Any], Any]], ...]] = {}


def _converters(model: type[Any]) -> tuple[tuple[str, Callable[[Any], Any]], ...]:
    """Each column attribute of `model` with the function that reads its JSON value back."""
    converters = _CONVERTERS.get(model)
    if converters is None:
        converters = tuple(
            (attribute.key, _from_json(attribute.columns[0].type)) for attribute in class_mapper(model).column_attrs
        )
        _CONVERTERS[model] = converters
    return converters


def _unchanged(value: Any) -> Any:
    return value


def _from_json(column_type: Any) -> Callable[[Any], Any]:
    try:
        python_type = column_type.python_type
    except NotImplementedError:
        return _unchanged
    if python_type is uuid.UUID:
        return uuid.UUID
    if python_type is datetime:
        return datetime.fromisoformat
    if isinstance(python_type, type) and issubclass(python_type, enum.Enum):
        return python_type
    return _unchanged


def dumps(value: Any) -> bytes:
    """orjson, with anything it does not know (asyncpg's UUID type) written as its string."""
    return orjson.dumps(value, default=str)


# --- invalidation ----------------------------------------------------------------------------------------------

# Columns whose updates do not change anything cached (bookkeeping written by reads).
_BOOKKEEPING_COLUMNS = frozenset({"last_seen_at", "last_used_at"})


def _scopes_of_table(table_name: str, values: dict[str, Any]) -> set[str] | None:
    """The scopes a row of `table_name` with these known column values belongs to; None = not cached at all;
    a set holding `*` when the key is unknown."""
    if table_name == "items":
        return {container_scope(values["container_id"])} if values.get("container_id") else {EVERYTHING}
    if table_name == "containers":
        scopes = {container_scope(values["id"])} if values.get("id") else {EVERYTHING}
        if values.get("project_id"):
            scopes.add(project_scope(values["project_id"]))
        return scopes
    if table_name == "projects":
        return {project_scope(values["id"])} if values.get("id") else {EVERYTHING}
    if table_name == "memberships":
        return {project_scope(values["project_id"])} if values.get("project_id") else {EVERYTHING}
    if table_name == "annotations":
        return {annotation_scope(values["container_id"])} if values.get("container_id") else {EVERYTHING}
    if table_name in ("users", "auth_sessions", "api_keys"):
        return {AUTH}
    return None


def _mark(session: Session, scopes: Iterable[str]) -> None:
    session.info.setdefault(_DIRTY_KEY, set()).update(scopes)


def mark_written(session: Any, scopes: Iterable[str]) -> None:
    """For writes the session events cannot read (Core statements on the session's connection): the scopes whose
    entries the next commit retires."""
    sync_session = getattr(session, "sync_session", session)
    if sync_session.info.get(CACHE_INFO_KEY) is not None:
        _mark(sync_session, scopes)


def _on_after_flush(session: Session, _context: Any) -> None:
    if session.info.get(CACHE_INFO_KEY) is None:
        return
    for instance in (*session.new, *session.dirty, *session.deleted):
        table = getattr(type(instance), "__tablename__", None)
        if table is None:
            continue
        scopes = _scopes_of_table(table, encode_row(instance) if table != "users" else {})
        if table == "users" and instance in session.deleted:
            # The database sets the author of the user's annotations to null: pages that show them are stale.
            scopes = {EVERYTHING}
        if scopes:
            _mark(session, scopes)


def _where_values(statement: Any) -> dict[str, Any]:
    """`column = value` conditions of a statement's WHERE clause on its own table's columns, by column name."""
    found: dict[str, Any] = {}
    where = getattr(statement, "whereclause", None)
    if where is None:
        return found
    for element in visitors.iterate(where):
        if (
            isinstance(element, BinaryExpression)
            and element.operator is eq
            and isinstance(element.right, BindParameter)
            and getattr(element.left, "table", None) is statement.table
        ):
            found[element.left.name] = element.right.effective_value
    return found


def _on_execute(state: ORMExecuteState) -> None:
    session = state.session
    if session.info.get(CACHE_INFO_KEY) is None:
        return
    statement = state.statement
    if isinstance(statement, TextClause):
        if not statement.text.lstrip().upper().startswith(("SELECT", "ANALYZE", "TRUNCATE IMPORT_", "SET ")):
            _mark(session, {EVERYTHING})
        return
    if not (state.is_insert or state.is_update or state.is_delete):
        return
    table_name = statement.table.name  # type: ignore[attr-defined]
    if state.is_update:
        set_columns = {getattr(column, "key", column) for column in (statement._values or {})}  # type: ignore[attr-defined]
        if set_columns and set_columns <= _BOOKKEEPING_COLUMNS:
            return
    where = _where_values(statement)
    parameters = state.parameters
    rows: list[dict[str, Any]] = (
        list(parameters) if isinstance(parameters, list) else [dict(parameters or {})]  # type: ignore[arg-type]
    )
    if state.is_insert and not parameters:
        rows = [{getattr(column, "key", column): value for column, value in (statement._values or {}).items()}]  # type: ignore[attr-defined]
    scopes: set[str] = set()
    for row in rows:
        found = _scopes_of_table(table_name, {**where, **_plain_keys(row)})
        if found is None:
            return
        scopes |= found
    _mark(session, scopes)


def _plain_keys(row: dict[str, Any]) -> dict[str, Any]:
    """Row values by column name (a statement's own values are keyed by column objects)."""
    return {getattr(key, "key", key): value for key, value in row.items()}


def _on_after_commit(session: Session) -> None:
    scopes = session.info.pop(_DIRTY_KEY, None)
    cache: Cache | None = session.info.get(CACHE_INFO_KEY)
    if scopes and cache is not None:
        cache.bump(scopes)


def _install_listeners() -> None:
    event.listen(Session, "after_flush", _on_after_flush)
    event.listen(Session, "do_orm_execute", _on_execute)
    event.listen(Session, "after_commit", _on_after_commit)


_install_listeners()
