"""SQL for exports: the containers to read, the (type, annotator) label columns, items in keyset pages, and
the annotations of one page of items.

On PostgreSQL the database builds each item's JSON object, or its CSV line, itself: `stream_lines` sends a
whole container through one `COPY (...) TO STDOUT (FORMAT binary)`, so the server keeps producing while the
worker writes, and the worker only cuts the stream into lines (`CopyLines`). `built_page` (the reply-structure
format) reads ready-made cells a keyset page at a time. The rules are those of the Python builder in
`service.py` (`_Records`, `label_value`, `_text`, `neutralise`, the csv module's minimal quoting), and the
tests run both backends.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, cast

import asyncpg
from sqlalchemy import (
    ARRAY,
    BigInteger,
    BindParameter,
    Row,
    Select,
    String,
    Uuid,
    bindparam,
    case,
    func,
    literal,
    select,
    text,
    true,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from annotation_platform.core.sql import rows_where_in
from annotation_platform.models import Annotation, Container, Item, Job, JobKind, JobStatus, User

UNKNOWN_AUTHOR = "deleted-user"
GOLD_AUTHOR = "gold"


def _author() -> Any:
    """The label column's annotator: `gold` for the adjudicated answer, else the author's username."""
    return case((Annotation.is_gold, literal(GOLD_AUTHOR)), else_=func.coalesce(User.username, UNKNOWN_AUTHOR)).label(
        "author"
    )


class ExportRepository:
    async def containers(
        self, session: AsyncSession, project_id: uuid.UUID, container_ids: Sequence[uuid.UUID] | None
    ) -> list[Container]:
        """The project's containers (those of `container_ids` only, when given), by name."""
        statement = select(Container).where(Container.project_id == project_id)
        if container_ids is not None:
            statement = statement.where(Container.id.in_(list(container_ids)))
        return list((await session.execute(statement.order_by(Container.name, Container.id))).scalars())

    def _annotations_of(self, container_ids: Sequence[uuid.UUID], types: Sequence[str] | None) -> Select[Any]:
        author = _author()
        statement = (
            select(Annotation.type, author)
            .outerjoin(User, User.id == Annotation.created_by)
            .where(Annotation.container_id.in_(list(container_ids)))
        )
        if types is not None:
            statement = statement.where(Annotation.type.in_(list(types)))
        return statement

    async def label_columns(
        self, session: AsyncSession, container_ids: Sequence[uuid.UUID], types: Sequence[str] | None
    ) -> list[tuple[str, str]]:
        """Every (type, annotator username) with at least one annotation, in one query."""
        if not container_ids:
            return []
        statement = self._annotations_of(container_ids, types).distinct().order_by("type", "author")
        return [(row.type, row.author) for row in await session.execute(statement)]

    async def metadata_keys(self, session: AsyncSession, container_ids: Sequence[uuid.UUID]) -> list[str]:
        """The top-level metadata keys used by the items, in one query."""
        if not container_ids:
            return []
        wanted = list(container_ids)
        if session.get_bind().dialect.name == "postgresql":
            # GROUP BY over a LATERAL call: hashed in each parallel worker (0.38 s for 1,000,000 items), where a
            # DISTINCT over the keys sorted all of them on disk (0.73 s).
            keys = func.jsonb_object_keys(Item.metadata_).table_valued("key").render_derived(name="k")
            statement = select(keys.c.key).select_from(Item).join(keys, true())
            statement = statement.where(Item.container_id.in_(wanted), func.jsonb_typeof(Item.metadata_) == "object")
            rows = await session.execute(statement.group_by(keys.c.key).order_by(keys.c.key))
        else:
            each = func.json_each(Item.metadata_).table_valued("key")
            statement = select(each.c.key).select_from(Item).join(each, true())
            statement = statement.where(Item.container_id.in_(wanted), func.json_type(Item.metadata_) == "object")
            statement = statement.distinct().order_by(each.c.key)
            rows = await session.execute(statement)
        return [str(row[0]) for row in rows]

    async def sealed_metadata(
        self, session: AsyncSession, container_ids: Sequence[uuid.UUID], chunk: int
    ) -> AsyncIterator[list[Row[Any]]]:
        """Sensitive projects: every item's `(id, metadata)`, in chunks, for the service to open."""
        statement = select(Item.id, Item.metadata_.label("metadata")).where(Item.container_id.in_(list(container_ids)))
        result = await session.stream(statement.execution_options(yield_per=chunk))
        async for rows in result.partitions(chunk):
            yield list(rows)

    async def items_page(
        self, session: AsyncSession, container_id: uuid.UUID, after: tuple[int, uuid.UUID] | None, limit: int
    ) -> list[Row[Any]]:
        """Up to `limit` items of the container after `(sequence, id)`, in order, with their parent's external id."""
        parent = aliased(Item)
        statement = (
            select(
                Item.id,
                Item.external_id,
                Item.content,
                Item.metadata_.label("metadata"),
                Item.sequence,
                parent.external_id.label("parent"),
            )
            .outerjoin(parent, parent.id == Item.parent_id)
            .where(Item.container_id == container_id)
            .order_by(Item.sequence, Item.id)
            .limit(limit)
        )
        if after is not None:
            position = tuple_(literal(after[0], BigInteger()), literal(after[1], Uuid()))
            statement = statement.where(tuple_(Item.sequence, Item.id) > position)
        return list((await session.execute(statement)).all())

    async def annotations_of_items(
        self, session: AsyncSession, item_ids: Sequence[uuid.UUID], types: Sequence[str] | None
    ) -> list[Row[Any]]:
        """The annotations on these items (of `types` only, when given), in creation order."""
        if not item_ids:
            return []
        author = _author()
        statement = (
            select(
                Annotation.item_id,
                Annotation.id,
                Annotation.type,
                Annotation.data,
                Annotation.start_offset,
                Annotation.end_offset,
                Annotation.version,
                Annotation.is_gold,
                author,
            )
            .outerjoin(User, User.id == Annotation.created_by)
            .order_by(Annotation.id)
        )
        if types is not None:
            statement = statement.where(Annotation.type.in_(list(types)))
        rows = await rows_where_in(session, statement, Annotation.item_id, list(item_ids), Uuid())
        rows.sort(key=lambda row: row.id)
        return rows

    async def built_page(
        self,
        session: AsyncSession,
        container: Container,
        after: tuple[int, uuid.UUID] | None,
        limit: int,
        *,
        types: Sequence[str] | None,
        csv_columns: tuple[Sequence[str], Sequence[str]],
    ) -> list[Row[Any]]:
        """PostgreSQL: up to `limit` items after `(sequence, id)`, each with `id`, `sequence`, `annotations` (how
        many) and, for `csv_columns` (metadata keys, label keys), its cells as text or NULL: `external_id`,
        `content`, `parent`, `m0`..., `l0`...."""
        params: dict[str, Any] = {
            "container_id": container.id,
            "container_name": container.name,
            "limit": limit,
            "after_sequence": after[0] if after else -1,
            "after_id": after[1] if after else uuid.UUID(int=0),
            "types": list(types) if types is not None else None,
            "unknown": UNKNOWN_AUTHOR,
            "gold": GOLD_AUTHOR,
        }
        binds: list[BindParameter[Any]] = [
            bindparam("types", type_=ARRAY(String())),
            bindparam("after_id", type_=Uuid()),
        ]
        cells = ["i.external_id", "i.content", "p.external_id AS parent"]
        cells += [f"{expression} AS {name}" for name, expression in _data_cells(params, csv_columns)]
        sql = _BUILT_PAGE.format(columns=", ".join(cells), labels=_LABELS)
        statement = text(sql).bindparams(*binds)
        return list((await session.execute(statement, params)).all())

    async def stream_lines(
        self,
        session: AsyncSession,
        container: Container,
        *,
        types: Sequence[str] | None,
        csv_columns: tuple[Sequence[str], Sequence[str]] | None,
        sink: Callable[[bytes], Awaitable[None]],
    ) -> None:
        """PostgreSQL: every item of the container in order, as `(line, annotations)` rows of a binary COPY whose
        chunks go to `sink` as the server sends them (`CopyLines` splits them). `line` is the item's JSON object,
        or given `csv_columns` (metadata keys, label keys) its CSV line without the line break. Whatever `sink`
        raises aborts the COPY and comes out of here."""
        params: dict[str, Any] = {
            "container_id": container.id,
            "types": list(types) if types is not None else None,
        }
        if csv_columns is None:
            metadata_keys = _in_jsonb_order(await self.metadata_keys(session, [container.id]))
            label_keys = _in_jsonb_order(
                [f"{type_}:{author}" for type_, author in await self.label_columns(session, [container.id], types)]
            )
            spliced = len(metadata_keys) <= SPLICED_KEYS_MAX and len(label_keys) <= SPLICED_KEYS_MAX
            if not spliced:
                metadata_keys, label_keys = [], []
            params.update(unknown=UNKNOWN_AUTHOR, gold=GOLD_AUTHOR)
            labels = await self._label_aggregates(session, params, label_keys, json=True)
            names = [container.name, *(f"metadata.{key}" for key in metadata_keys), *label_keys]
            line = _json_line(
                params, container, metadata_keys, await self._json_strings(session, names), spliced=spliced
            )
            if not spliced:
                labels += f", {_LABELS}"
            sql = _STREAM_JSON.format(line=line, labels=labels)
        else:
            csv_metadata, csv_labels = csv_columns
            labels = await self._label_aggregates(session, params, csv_labels, json=False)
            sql = _csv_stream(params, container.name, csv_metadata, len(csv_labels), labels)
        connection = await session.connection()
        # The COPY is one statement over the whole container: JIT compilation (0.3 to 0.8 s a statement, measured)
        # costs more than it saves, and would be paid again for every container.
        await connection.exec_driver_sql("SET LOCAL jit = off")
        compiled = (
            text(sql)
            .bindparams(bindparam("types", type_=ARRAY(String())), bindparam("container_id", type_=Uuid()))
            .compile(dialect=connection.dialect)
        )
        arguments = [params[name] for name in compiled.positiontup or ()]
        raw = cast(asyncpg.Connection, (await connection.get_raw_connection()).driver_connection)
        await raw.copy_from_query(compiled.string, *arguments, output=sink, format="binary")

    async def _label_aggregates(
        self, session: AsyncSession, params: dict[str, Any], label_keys: Sequence[str], *, json: bool
    ) -> str:
        """The SQL of `count` and of one aggregate `l0`... per label key over an item's annotations: the chosen
        annotation's value as JSON (`json`) or as a CSV cell's text, behind a 37-character sort prefix (see
        `_label_aggregate`); the authors are matched by user id, so the annotations need no join to `users`."""
        authors = sorted({key.split(":", 1)[1] for key in label_keys})
        user_ids: dict[str, uuid.UUID] = {}
        if authors:
            rows = await session.execute(select(User.username, User.id).where(User.username.in_(authors)))
            user_ids = {row.username: row.id for row in rows}
        aggregates = ["count(*) AS count"]
        for n, key in enumerate(label_keys):
            type_, author = key.split(":", 1)
            params[f"lt{n}"] = type_
            who = []
            if author == GOLD_AUTHOR:
                who.append("a.is_gold")
            if author == UNKNOWN_AUTHOR:
                who.append("(NOT a.is_gold AND a.created_by IS NULL)")
            if author in user_ids:
                params[f"lu{n}"] = user_ids[author]
                who.append(f"(NOT a.is_gold AND a.created_by = :lu{n})")
            aggregates.append(
                _label_aggregate(f"l{n}", type_, f"a.type = :lt{n} AND ({' OR '.join(who) or 'false'})", json=json)
            )
        return ", ".join(aggregates)

    async def _json_strings(self, session: AsyncSession, strings: Sequence[str]) -> list[str]:
        """Each string as a JSON string the way PostgreSQL's `to_json` writes it (its escapes, not Python's)."""
        if not strings:
            return []
        statement = text(
            "SELECT CAST(to_json(s) AS text) FROM unnest(CAST(:strings AS text[])) WITH ORDINALITY AS t(s, n)"
            " ORDER BY n"
        ).bindparams(bindparam("strings", type_=ARRAY(String())))
        return [str(row[0]) for row in await session.execute(statement, {"strings": list(strings)})]

    async def finished_exports_before(
        self, session: AsyncSession, before: datetime, after: uuid.UUID | None, limit: int
    ) -> list[Job]:
        """Succeeded exports that finished before `before`, by id after `after` (expired ones included)."""
        statement = (
            select(Job)
            .where(
                Job.kind == JobKind.export.value,
                Job.status == JobStatus.succeeded.value,
                Job.finished_at < before,
            )
            .order_by(Job.id)
            .limit(limit)
        )
        if after is not None:
            statement = statement.where(Job.id > after)
        return list((await session.execute(statement)).scalars())


SPLICED_KEYS_MAX = 16
"""Up to this many metadata keys and as many label keys in a container, a JSON line's flat copies are spliced in
key by key (a lookup each); beyond that, one `jsonb_each` and one `jsonb_object_agg` an item cost less."""

# Built as text, not as one jsonb object merged with `||` (12.7 s against 7.3 s for 50,000 items, measured with
# psql), and by one `concat` of the pieces `json_build_object` would write (same bytes: `to_json` escapes alike)
# rather than by `json_build_object` whose closing brace is then cut off for the flat copies (0.91 s against
# 1.22 s of database time for 100,000 items). The flat `metadata.*` copies and the labels go before the closing
# brace; neither can repeat a key of the base object, which has no `.` or `:` in its keys, nor each other (a type
# has no `.`). `:json_start` holds the constant start of every line of the container.
_JSON_ITEM = """concat(CAST(:json_start AS text), to_json(i.external_id), ', "sequence" : ', i.sequence,
        ', "content" : ', to_json(i.content), ', "parent" : ', coalesce(CAST(to_json(p.external_id) AS text), 'null'),
        ', "metadata" : ', CASE WHEN jsonb_typeof(i.metadata) = 'object' THEN i.metadata ELSE '{}'::jsonb END,
        ', "annotations" : ', coalesce(ann.list, '[]'::json)FLAT, '}') AS line"""

# Beyond SPLICED_KEYS_MAX: the metadata's keys by `jsonb_each`, the labels as one jsonb object (`_LABELS`).
_FLAT_BY_JSONB = """,
        (SELECT string_agg(', ' || to_json('metadata.' || m.key)::text || ': ' || m.value::text, '')
         FROM jsonb_each(CASE WHEN jsonb_typeof(i.metadata) = 'object' THEN i.metadata END) AS m),
        ', ' || nullif(substr(ann.labels::text, 2, length(ann.labels::text) - 2), '')"""

# An item's label for a (type, annotator) is its oldest annotation without offsets, else its oldest span (as
# `_Records.build` does): the smallest of `0` or `1` (plain or span), the id as text (bytewise, the uuid's
# order) and the value. `min` needs no sort, unlike an ordered aggregate, nor a jsonb object (measured on
# 100,000 items: 0.27 s of database time against 0.46 s with the `jsonb_object_agg` of `_LABELS`).
_LABEL_PREFIX = 37


def _in_jsonb_order(keys: Sequence[str]) -> list[str]:
    """Keys in the order a jsonb object keeps them (shorter first, then bytewise), as the flat copies were."""
    return sorted(keys, key=lambda key: (len(key.encode()), key.encode()))


def _label_aggregate(name: str, annotation_type: str, condition: str, *, json: bool) -> str:
    """`label_value` of the chosen annotation, as JSON or as a CSV cell's text (JSON null: empty), behind the
    prefix."""
    if annotation_type == "thread":
        value = "coalesce(a.data -> 'thread_id', a.data -> 'value', a.data)"
    else:
        value = "coalesce(a.data -> 'value', a.data)"
    shown = f"CAST({value} AS text)" if json else f"coalesce({value} #>> '{{}}', '')"
    ordered = f"CASE WHEN a.start_offset IS NULL THEN '0' ELSE '1' END || CAST(a.id AS text) || {shown}"
    return f'min(({ordered}) COLLATE "C") FILTER (WHERE {condition}) AS {name}'


def _json_line(
    params: dict[str, Any], container: Container, metadata_keys: Sequence[str], names: Sequence[str], *, spliced: bool
) -> str:
    """The JSON line of an item. `names` are JSON strings: the container's name, then, when the flat copies are
    `spliced` in key by key, `metadata.<key>` for `metadata_keys` and the label keys (aggregates `l0`...); else
    they come from `_FLAT_BY_JSONB`. A key the item lacks adds nothing (`concat` skips NULL)."""
    params["json_start"] = f'{{"container" : {names[0]}, "container_id" : "{container.id}", "external_id" : '
    if not spliced:
        return _JSON_ITEM.replace("FLAT", _FLAT_BY_JSONB)
    fragments = []
    for n, key in enumerate(metadata_keys):
        params[f"m{n}"], params[f"mk{n}"] = key, f", {names[1 + n]}: "
        fragments.append(f"CAST(:mk{n} AS text) || CAST(i.metadata -> CAST(:m{n} AS text) AS text)")
    for n, name in enumerate(names[1 + len(metadata_keys) :]):
        params[f"lk{n}"] = f", {name}: "
        fragments.append(f"CAST(:lk{n} AS text) || substr(ann.l{n}, {_LABEL_PREFIX + 1})")
    return _JSON_ITEM.replace("FLAT", "".join(f",\n        {fragment}" for fragment in fragments))


def _data_cells(params: dict[str, Any], csv_columns: tuple[Sequence[str], Sequence[str]]) -> list[tuple[str, str]]:
    """(name, SQL) of the metadata cells `m0`... and label cells `l0`..., their keys bound into `params`."""
    metadata_keys, label_keys = csv_columns
    cells = []
    for n, key in enumerate(metadata_keys):
        params[f"m{n}"] = key
        cells.append((f"m{n}", f"i.metadata ->> :m{n}"))
    for n, key in enumerate(label_keys):
        params[f"l{n}"] = key
        cells.append((f"l{n}", f"ann.labels ->> :l{n}"))
    return cells


# An item's labels as one jsonb object (reply-structure pages; JSON lines beyond SPLICED_KEYS_MAX): jsonb keeps
# the last value of a repeated key, so spans come first and plain annotations last, newest first: the oldest
# plain annotation wins, else the oldest span (as `_Records.build` does).
_LABELS = """jsonb_object_agg(
            a.type || ':' || CASE WHEN a.is_gold THEN CAST(:gold AS text) ELSE coalesce(u.username, :unknown) END,
            CASE
                WHEN jsonb_typeof(a.data) = 'object' AND a.type = 'thread' AND a.data ? 'thread_id'
                    THEN a.data -> 'thread_id'
                WHEN jsonb_typeof(a.data) = 'object' AND a.data ? 'value' THEN a.data -> 'value'
                ELSE a.data
            END
            ORDER BY a.start_offset IS NULL, a.id DESC
        ) AS labels"""

_STREAM_JSON = """
SELECT {line}, coalesce(ann.count, 0) AS annotations
FROM items AS i
LEFT JOIN items AS p ON p.id = i.parent_id
LEFT JOIN LATERAL (
    SELECT json_agg(json_build_object(
            'type', a.type, 'data', a.data, 'start_offset', a.start_offset, 'end_offset', a.end_offset,
            'author', CASE WHEN a.is_gold THEN CAST(:gold AS text) ELSE coalesce(u.username, :unknown) END,
            'version', a.version, 'is_gold', a.is_gold) ORDER BY a.id) AS list, {labels}
    FROM annotations AS a LEFT JOIN users AS u ON u.id = a.created_by
    WHERE a.item_id = i.id AND (CAST(:types AS text[]) IS NULL OR a.type = ANY(:types))
) AS ann ON true
WHERE i.container_id = :container_id
ORDER BY i.sequence, i.id
"""

# The cells are computed once, in the inner query (`OFFSET 0` keeps the planner from copying their expressions
# into every use), and quoted by the outer one: one regular expression over the whole line tells whether any
# cell needs quotes; only then is each cell checked.
_STREAM_CSV = """
SELECT CASE WHEN concat({texts}) ~ {needs_quotes} THEN concat_ws(',', {quoted}) ELSE concat_ws(',', {plain}) END
    AS line, v.annotations
FROM (
    SELECT i.sequence, i.id, {cells}, coalesce(ann.count, 0) AS annotations
    FROM items AS i
    LEFT JOIN items AS p ON p.id = i.parent_id
    LEFT JOIN LATERAL (
        SELECT {labels}
        FROM annotations AS a
        WHERE a.item_id = i.id AND (CAST(:types AS text[]) IS NULL OR a.type = ANY(:types))
    ) AS ann ON true
    WHERE i.container_id = :container_id
    ORDER BY i.sequence, i.id
    OFFSET 0
) AS v
ORDER BY v.sequence, v.id
"""

_FORMULA_CODES = "9, 13, 43, 45, 61, 64"  # tab, carriage return, +, -, =, @: `FORMULA_STARTS` in service.py
_NEEDS_QUOTES = r"""E'[",\r\n]'"""


def _neutral(cell: str) -> str:
    """`neutralise` in SQL: a cell that starts with a formula character gets a leading `'`."""
    return f"CASE WHEN ascii({cell}) IN ({_FORMULA_CODES}) THEN '''' || {cell} ELSE {cell} END"


def _quoted(cell: str) -> str:
    """Then quoted as Python's csv writer does (minimal quoting): a cell with a quote, a comma or a line break is
    quoted, its quotes doubled."""
    neutral = _neutral(cell)
    return f"""CASE WHEN {cell} ~ {_NEEDS_QUOTES} THEN '"' || replace({neutral}, '"', '""') || '"' ELSE {neutral} END"""


def _csv_text(cell: str) -> str:
    """The same in Python, for the container's name (one cell for the whole container)."""
    if cell.startswith(("=", "+", "-", "@", "\t", "\r")):
        cell = "'" + cell
    if any(character in cell for character in '",\r\n'):
        cell = '"' + cell.replace('"', '""') + '"'
    return cell


def _csv_stream(
    params: dict[str, Any], container_name: str, metadata_keys: Sequence[str], label_count: int, labels: str
) -> str:
    """The COPY query of a container's CSV lines: the cells in the columns' order, NULL written as empty."""
    params["container_cell"] = _csv_text(container_name)
    cells = {"external_id": "i.external_id", "content": "i.content", "parent": "coalesce(p.external_id, '')"}
    for n, key in enumerate(metadata_keys):
        params[f"m{n}"] = key
        cells[f"m{n}"] = f"coalesce(i.metadata ->> CAST(:m{n} AS text), '')"
    for n in range(label_count):
        cells[f"l{n}"] = f"coalesce(substr(ann.l{n}, {_LABEL_PREFIX + 1}), '')"
    texts = [f"v.c_{name}" for name in cells]
    sequence = "CASE WHEN v.sequence < 0 THEN '''' || v.sequence ELSE CAST(v.sequence AS text) END"

    def line(cell: Callable[[str], str]) -> str:
        return ", ".join(["CAST(:container_cell AS text)", cell(texts[0]), sequence, *map(cell, texts[1:])])

    return _STREAM_CSV.format(
        texts=", ".join(texts),
        needs_quotes=_NEEDS_QUOTES,
        quoted=line(_quoted),
        plain=line(_neutral),
        cells=", ".join(f"{expression} AS c_{name}" for name, expression in cells.items()),
        labels=labels,
    )


class CopyLines:
    """Cuts the chunks of `COPY (SELECT line, annotations) TO STDOUT (FORMAT binary)` into lines (bytes exactly
    as the server made them: binary COPY escapes nothing) and counts the annotations; a row may span chunks."""

    _HEADER = 19  # signature (11 bytes), flags (4), header extension length (4)

    def __init__(self) -> None:
        self.pending = b""
        self.header_read = False
        self.annotations = 0

    def feed(self, chunk: bytes) -> list[bytes]:
        data = self.pending + chunk if self.pending else bytes(chunk)
        position = 0
        if not self.header_read:
            if len(data) < self._HEADER:
                self.pending = data
                return []
            (extension,) = struct.unpack_from(">i", data, 15)
            position = self._HEADER + extension
            if len(data) < position:
                self.pending = data
                return []
            self.header_read = True
        lines: list[bytes] = []
        end = len(data)
        unpack_from = struct.unpack_from
        while position + 2 <= end:
            if unpack_from(">h", data, position)[0] == -1:  # the trailer
                position = end
                break
            if position + 6 > end:
                break
            length = unpack_from(">i", data, position + 2)[0]
            line_end = position + 6 + length
            if line_end + 12 > end:
                break
            lines.append(data[position + 6 : line_end])
            self.annotations += unpack_from(">q", data, line_end + 4)[0]
            position = line_end + 12
        self.pending = data[position:]
        return lines


_BUILT_PAGE = """
SELECT i.id, i.sequence, coalesce(ann.count, 0) AS annotations, {columns}
FROM items AS i
LEFT JOIN items AS p ON p.id = i.parent_id
LEFT JOIN LATERAL (
    SELECT count(*) AS count, {labels}
    FROM annotations AS a LEFT JOIN users AS u ON u.id = a.created_by
    WHERE a.item_id = i.id AND (CAST(:types AS text[]) IS NULL OR a.type = ANY(:types))
) AS ann ON true
WHERE i.container_id = :container_id AND (i.sequence, i.id) > (:after_sequence, :after_id)
ORDER BY i.sequence, i.id
LIMIT :limit
"""

export_repository = ExportRepository()
