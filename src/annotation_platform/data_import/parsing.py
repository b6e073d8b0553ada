"""Reading import files (CSV, a JSON array of objects, JSON Lines) as a stream of rows.

Pure: no database, no settings, no I/O but reading the one file. `parse_rows` yields one `ParsedRow` per good
row and one or more `RowProblem`s per bad row, in file order, and raises `ImportFileError` when the file cannot
be read at all. The writer (`service.py`) decides what to do with problems (all or nothing, or skip).

Memory stays flat however large the file: CSV is read through the csv module over a text stream, JSON Lines
line by line, and a JSON array element by element with `json.JSONDecoder.raw_decode` over a sliding buffer.
The record of external ids already seen (to report duplicates, with the row each repeats) keeps the newest
`SEEN_IDS_IN_MEMORY` ids in memory (about 15 MB) and the rest in a temporary SQLite file.

The rules (see `docs/imports.md` and DOMAIN.md, "Observed in the wild"):

- every column the mapping names must be in the CSV header (`ImportFileError` otherwise); JSON objects may
  omit a key (no value), but a file in which no object has the external id's key is refused;
- empty cells and the literal strings `null` / `NULL` (and JSON `null`) mean no value, in every mapped column;
- a row with no value in every mapped column is skipped silently; a row with a value but no external id is a
  problem; duplicate external ids are problems on the later rows;
- extra columns, extra cells beyond the header and an unnamed trailing column are ignored.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
import sqlite3
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO

from annotation_platform.core.schemas import MAX_JSON_BYTES, json_bound_problem, json_depth
from annotation_platform.item.schemas import MAX_CONTENT_LENGTH

FORMATS: Final = ("csv", "json", "jsonl")
"""The accepted values of `parse_rows(file_format=...)`."""

NO_VALUE: Final = frozenset({"", "null", "NULL"})
"""Cell values that mean "no value"."""

CHAT_PRESET: Final[dict[str, str]] = {
    "external_id": "turn_id",
    "content": "turn_text",
    "metadata.user_id": "user_id",
    "parent": "reply_to_turn",
    "annotation.thread": "thread",
}
"""The mapping a `chat_room` container uses when the import names none (the original tool's export)."""

GENERIC_MAPPING: Final[dict[str, str]] = {"external_id": "external_id", "content": "content"}
"""The mapping any other container uses when the import names none."""

CHAT_CONTAINER_TYPE: Final = "chat_room"
MAX_EXTERNAL_ID_LENGTH: Final = 255
MAX_SEQUENCE: Final = 2**62
MAX_JSON_VALUE_CHARS: Final = 64 * 1024 * 1024
"""A single JSON object (or JSON Lines line) longer than this ends the import: it bounds memory on garbage."""
MAX_CSV_CELL_CHARS: Final = 4 * MAX_CONTENT_LENGTH
"""Longer cells (typically an unclosed quote swallowing the rest of the file) end the import."""

SEEN_IDS_IN_MEMORY: Final = 100_000
"""External ids kept in memory for the duplicate check; older ones go to a temporary file."""

_SIMPLE_TARGETS: Final = ("external_id", "content", "sequence", "parent")
_TYPE_SLUG: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")
_JSON_WHITESPACE: Final = re.compile(r"[ \t\n\r]*")
_CHUNK_CHARS: Final = 64 * 1024
_SNIFF_CHARS: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class ParsedRow:
    """One good row. `number` is the 1-based data row (CSV: header not counted; JSON: element index; JSON
    Lines: line number). `annotations` maps a type to its data: `{"thread_id": v}` for `thread`, else
    `{"value": v}`."""

    number: int
    external_id: str
    content: str
    sequence: int | None
    parent_external_id: str | None
    metadata: dict[str, Any]
    annotations: dict[str, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class RowProblem:
    """Why row `row` cannot be imported; `column` is the source column or key concerned, when there is one."""

    row: int
    column: str | None
    message: str


class ImportFileError(Exception):
    """The file cannot be read at all; the message says why and where, for the user."""


class MappingError(ValueError):
    """The mapping itself is wrong (before any file is read)."""


# --- mappings -------------------------------------------------------------------------------------------------


def validate_mapping(mapping: dict[str, Any]) -> None:
    """Raise `MappingError` (listing every mistake) unless `mapping` is a valid target -> source mapping.

    Targets: `external_id` (required), `content`, `sequence`, `parent`, `metadata.<key>` and `annotation.<type>`
    where <type> is a slug (`^[a-z][a-z0-9_]{0,63}$`). Sources are non-empty column names (CSV) or keys (JSON).
    """
    if not isinstance(mapping, dict):
        raise MappingError("the mapping must be a JSON object from target to source column")
    mistakes: list[str] = []
    for target, source in mapping.items():
        if not isinstance(target, str):
            mistakes.append(f"target {target!r} is not a string")
            continue
        if target not in _SIMPLE_TARGETS:
            prefix, _, key = target.partition(".")
            if prefix == "metadata":
                if not key or key != key.strip():
                    mistakes.append(f"target {target!r}: a metadata key must be non-empty, without surrounding spaces")
            elif prefix == "annotation":
                if not _TYPE_SLUG.fullmatch(key):
                    mistakes.append(
                        f"target {target!r}: an annotation type is lower-case letters, digits and underscores, "
                        "starting with a letter (at most 64)"
                    )
            else:
                mistakes.append(
                    f"unknown target {target!r} (expected external_id, content, sequence, parent, "
                    "metadata.<key> or annotation.<type>)"
                )
        if not isinstance(source, str):
            mistakes.append(f"target {target!r}: the source must be a column name (a string), not {_kind(source)}")
        elif not source.strip():
            mistakes.append(f"target {target!r}: the source column name is empty")
    if "external_id" not in mapping:
        mistakes.append("the mapping has no external_id target (the column that identifies each row)")
    if mistakes:
        raise MappingError("; ".join(mistakes))


def effective_mapping(mapping: dict[str, Any] | None, container_type: str) -> dict[str, str]:
    """The mapping an import uses: `mapping` when given (validated; `{}` is given, and invalid), else
    `CHAT_PRESET` for a `chat_room` container, else `GENERIC_MAPPING`: `external_id` <- column `external_id`,
    `content` <- column `content`, nothing else (no fallbacks to other names: every mapped column must exist,
    so a wrong guess fails loudly instead of importing half the data). `parse_rows` calls this itself."""
    if mapping is None:
        return dict(CHAT_PRESET if container_type == CHAT_CONTAINER_TYPE else GENERIC_MAPPING)
    validate_mapping(mapping)
    return dict(mapping)


def validate_encoding(encoding: str) -> None:
    """Raise `ValueError` unless `encoding` names a text encoding Python knows (`utf-8`, `latin-1`, `cp1252`...)."""
    _codec_name(encoding, error=ValueError)


@dataclass(frozen=True, slots=True)
class _Spec:
    """A mapping as slots: 0 external_id, 1 content, 2 sequence, 3 parent, then metadata, then annotations."""

    sources: tuple[str | None, ...]
    metadata: tuple[tuple[int, str], ...]  # (slot, key)
    annotations: tuple[tuple[int, str, str], ...]  # (slot, type, data key)

    @classmethod
    def of(cls, mapping: dict[str, str]) -> _Spec:
        sources: list[str | None] = [mapping.get(target) for target in _SIMPLE_TARGETS]
        metadata: list[tuple[int, str]] = []
        annotations: list[tuple[int, str, str]] = []
        for target, source in mapping.items():
            prefix, _, key = target.partition(".")
            if prefix == "metadata":
                metadata.append((len(sources), key))
                sources.append(source)
        for target, source in mapping.items():
            prefix, _, key = target.partition(".")
            if prefix == "annotation":
                annotations.append((len(sources), key, "thread_id" if key == "thread" else "value"))
                sources.append(source)
        return cls(tuple(sources), tuple(metadata), tuple(annotations))

    def target_of(self, slot: int) -> str:
        if slot < len(_SIMPLE_TARGETS):
            return _SIMPLE_TARGETS[slot]
        for meta_slot, key in self.metadata:
            if meta_slot == slot:
                return f"metadata.{key}"
        return next(f"annotation.{kind}" for ann_slot, kind, _ in self.annotations if ann_slot == slot)


# --- rows -----------------------------------------------------------------------------------------------------


class _SeenIds:
    """The external ids met so far, each with the row where it first appeared, to report duplicates.

    The newest `SEEN_IDS_IN_MEMORY` ids are in a dict; older ones are spilled into a private temporary SQLite
    file (deleted when closed), so memory stays flat however many rows the file has. Once ids have been
    spilled, each new id costs one indexed look-up there.
    """

    def __init__(self) -> None:
        self.recent: dict[str, int] = {}
        self.spilled: sqlite3.Connection | None = None

    def earlier_row(self, external_id: str, number: int) -> int | None:
        """The row where `external_id` first appeared, or None (and it is remembered) if it is new."""
        first = self.recent.get(external_id)
        if first is None and self.spilled is not None:
            found = self.spilled.execute("SELECT row FROM seen WHERE id = ?", (external_id,)).fetchone()
            first = None if found is None else int(found[0])
        if first is not None:
            return first
        self.recent[external_id] = number
        if len(self.recent) >= SEEN_IDS_IN_MEMORY:
            self._spill()
        return None

    def _spill(self) -> None:
        if self.spilled is None:
            # "" opens a private on-disk database that SQLite deletes when the connection closes.
            self.spilled = sqlite3.connect("")
            self.spilled.execute("PRAGMA journal_mode = OFF")
            self.spilled.execute("PRAGMA synchronous = OFF")
            self.spilled.execute("CREATE TABLE seen (id TEXT PRIMARY KEY, row INTEGER NOT NULL) WITHOUT ROWID")
        self.spilled.executemany("INSERT INTO seen VALUES (?, ?)", self.recent.items())
        self.recent = {}

    def close(self) -> None:
        if self.spilled is not None:
            self.spilled.close()
            self.spilled = None


class _RowBuilder:
    """Turns the mapped values of one row into a ParsedRow or problems; remembers the external ids seen."""

    def __init__(self, spec: _Spec, *, json_values: bool, seen: _SeenIds) -> None:
        self.spec = spec
        self.json_values = json_values
        self.seen = seen

    def build(self, number: int, values: list[Any], *, check_text: bool) -> ParsedRow | list[RowProblem] | None:
        """`values` holds one value per slot, None for no value. None back means a blank row (skip it)."""
        if values.count(None) == len(values):
            return None
        bad: list[tuple[int, str]] = []  # (slot, message)
        raw_id, raw_content, raw_sequence, raw_parent = values[0], values[1], values[2], values[3]
        external_id = None
        deep_check = check_text and self.json_values  # CSV cells are checked below with a plain `in`
        if raw_id is None:
            bad.append((0, "no external id, but the row has other values"))
        else:
            identifier: str
            if type(raw_id) is str and not deep_check and _plain_identifier(identifier := raw_id.strip()):
                message = None
            else:
                identifier, message = self._identifier(raw_id, check_text)
            if message is not None:
                bad.append((0, f"external id {message}"))
            elif (first := self.seen.earlier_row(identifier, number)) is not None:
                bad.append((0, f"external id {identifier!r} repeats row {first}"))
            external_id = identifier
        content = ""
        if raw_content is not None:
            if isinstance(raw_content, str):
                content = raw_content
            elif self.json_values and isinstance(raw_content, int | float) and not isinstance(raw_content, bool):
                content = str(raw_content)
            else:
                bad.append((1, f"content must be text, not {_kind(raw_content)}"))
            if len(content) > MAX_CONTENT_LENGTH:
                bad.append((1, f"content is longer than {MAX_CONTENT_LENGTH:,} characters"))
            elif check_text and (message := _text_problem(content, self.json_values)):
                bad.append((1, f"content {message}"))
        sequence = None
        if raw_sequence is not None:
            sequence, message = _sequence(raw_sequence)
            if message is not None:
                bad.append((2, message))
        parent = None
        if raw_parent is not None:
            if type(raw_parent) is str and not deep_check and _plain_identifier(parent := raw_parent.strip()):
                pass
            else:
                parent, message = self._identifier(raw_parent, check_text)
                if message is not None:
                    bad.append((3, f"parent {message}"))
        metadata: dict[str, Any] = {}
        for slot, key in self.spec.metadata:
            value = values[slot]
            if value is not None:
                if (deep_check or (check_text and "\x00" in value)) and (
                    message := _deep_text_problem(value, self.json_values)
                ):
                    bad.append((slot, f"value {message}"))
                metadata[key] = value
        if metadata and (self.json_values or sum(map(len, metadata.values())) * 4 > MAX_JSON_BYTES):
            bad += self._bound_problems(metadata, [slot for slot, key in self.spec.metadata if key in metadata])
        annotations: dict[str, dict[str, Any]] = {}
        for slot, kind, data_key in self.spec.annotations:
            value = values[slot]
            if value is not None:
                if (deep_check or (check_text and "\x00" in value)) and (
                    message := _deep_text_problem(value, self.json_values)
                ):
                    bad.append((slot, f"value {message}"))
                annotations[kind] = {data_key: value}
                if (self.json_values or len(value) * 4 > MAX_JSON_BYTES) and (
                    message := json_bound_problem(annotations[kind])
                ):
                    bad.append((slot, f"the annotation is {message}"))
        if bad or external_id is None:
            sources = self.spec.sources
            return [RowProblem(number, sources[slot], message) for slot, message in bad]
        return ParsedRow(number, external_id, content, sequence, parent, metadata, annotations)

    @staticmethod
    def _bound_problems(metadata: dict[str, Any], slots: list[int]) -> list[tuple[int, str]]:
        """The API's size and depth limits on metadata, blamed on the value's column (or the biggest one's)."""
        if (problem := json_bound_problem(metadata)) is None:
            return []
        deep = problem.startswith("nested")
        pairs = zip(slots, metadata.values(), strict=True)
        blamed = max(pairs, key=lambda pair: json_depth(pair[1]) if deep else len(json.dumps(pair[1])))[0]
        return [(blamed, f"metadata {problem}")]

    def _identifier(self, value: Any, check_text: bool) -> tuple[str, str | None]:
        """An external id (or parent reference) with surrounding spaces removed, and what is wrong with it."""
        if isinstance(value, str):
            text = value.strip()
        elif self.json_values and isinstance(value, int) and not isinstance(value, bool):
            text = str(value)
        else:
            return "", f"must be text or an integer, not {_kind(value)}"
        if not text:
            return "", "is only spaces"
        if len(text) > MAX_EXTERNAL_ID_LENGTH:
            return text, f"is longer than {MAX_EXTERNAL_ID_LENGTH} characters"
        if "\n" in text or "\r" in text:
            return text, "contains a line break"
        if check_text and (message := _text_problem(text, self.json_values)):
            return text, message
        return text, None


def _plain_identifier(text: str) -> bool:
    """Whether a stripped id needs no closer look (the common case, checked quickly)."""
    return 0 < len(text) <= MAX_EXTERNAL_ID_LENGTH and "\n" not in text and "\r" not in text and "\x00" not in text


def _sequence(value: Any) -> tuple[int | None, str | None]:
    if isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.isdigit()):
            return None, f"sequence must be a non-negative integer, not {value!r}"
        number = int(text)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
        if number < 0:
            return None, f"sequence must be a non-negative integer, not {number}"
    else:
        return None, f"sequence must be a non-negative integer, not {_kind(value)}"
    if number > MAX_SEQUENCE:
        return None, "sequence must be at most 2**62"
    return number, None


def _text_problem(text: str, json_values: bool) -> str | None:
    if "\x00" in text:
        return "contains a NUL character, which cannot be stored"
    if json_values:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "contains an unpaired surrogate (\\ud800-\\udfff), which is not valid Unicode"
    return None


def _deep_text_problem(value: Any, json_values: bool) -> str | None:
    if isinstance(value, str):
        return _text_problem(value, json_values)
    if isinstance(value, dict):
        for key, child in value.items():
            if message := _text_problem(key, json_values) or _deep_text_problem(child, json_values):
                return message
    elif isinstance(value, list):
        for child in value:
            if message := _deep_text_problem(child, json_values):
                return message
    return None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


Rows = Generator[ParsedRow | RowProblem, None, None]

# --- files ----------------------------------------------------------------------------------------------------


def parse_rows(
    path: Path, *, file_format: str, mapping: dict[str, str] | None, container_type: str, encoding: str = "utf-8"
) -> Rows:
    """Stream the rows of the file at `path`: a `ParsedRow` per good row, `RowProblem`s for bad ones.

    `file_format` is `csv`, `json` (an array of objects) or `jsonl`; `mapping` as for `effective_mapping`
    (raises `MappingError`); `encoding` any Python text codec (a UTF-8 byte-order mark is skipped). Raises
    `ImportFileError` as soon as the file turns out to be unreadable, which may be after some rows (e.g. a
    truncated JSON array is noticed at its end): the caller must not treat the rows already seen as complete.
    """
    if file_format not in FORMATS:
        raise ImportFileError(f"unknown format {file_format!r} (expected one of: {', '.join(FORMATS)})")
    spec = _Spec.of(effective_mapping(mapping, container_type))
    codec = _codec_name(encoding, error=ImportFileError)
    _check_byte_order_mark(path, codec, encoding)
    parse = _PARSERS[file_format]

    seen = _SeenIds()
    builder = _RowBuilder(spec, json_values=file_format != "csv", seen=seen)
    try:
        yield from parse(path, spec, codec, builder)
    except UnicodeDecodeError as error:
        raise ImportFileError(_decode_error_message(path, codec, encoding, error)) from None
    except OSError as error:
        raise ImportFileError(f"the file cannot be read: {error.strerror or error}") from None
    finally:
        seen.close()


def _codec_name(encoding: str, *, error: type[Exception]) -> str:
    try:
        name = codecs.lookup(encoding).name
        "".encode(name)  # refuses bytes-to-bytes codecs such as hex or base64
    except (LookupError, TypeError):
        raise error(f"unknown text encoding {encoding!r} (e.g. utf-8, latin-1, cp1252)") from None
    return "utf-8-sig" if name == "utf-8" else name


def _check_byte_order_mark(path: Path, codec: str, encoding: str) -> None:
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError as error:
        raise ImportFileError(f"the file cannot be read: {error.strerror or error}") from None
    if codec.startswith(("utf-16", "utf-32")):
        return
    if head.startswith(codecs.BOM_UTF8) and codec != "utf-8-sig":
        raise ImportFileError(
            f"the file starts with a UTF-8 byte-order mark, so it is UTF-8, not {encoding}: import it as utf-8"
        )
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ImportFileError(
            f"the file starts with a UTF-16 byte-order mark, so it is UTF-16, not {encoding}: import it as utf-16"
        )


def _decode_error_message(path: Path, codec: str, encoding: str, error: UnicodeDecodeError) -> str:
    """Where the first undecodable bytes are (found again from the start: the text layer reads ahead)."""
    decoder = codecs.getincrementaldecoder(codec)()
    offset, lines = 0, 1
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 16):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as found:
                bad = found.object[found.start : found.end]
                lines += found.object.count(b"\n", 0, found.start)
                where = f"line {lines} (byte {offset + found.start + 1})"
                break
            offset += len(chunk)
            lines += chunk.count(b"\n")
        else:
            bad, where = error.object[error.start : error.end], "the end of the file"
    hint = ""
    if codec == "utf-8-sig":
        hint = "; if the file was saved as Latin-1 or Windows-1252, import it with encoding latin-1 or cp1252"
    return f"{where}: bytes {bad.hex(' ')} are not valid {encoding}{hint}"


def _open_text(path: Path, codec: str) -> TextIO:
    return path.open(encoding=codec, newline="")


def _parse_csv(path: Path, spec: _Spec, codec: str, builder: _RowBuilder) -> Rows:
    with _open_text(path, codec) as handle:
        head = handle.read(_SNIFF_CHARS)
    if not head.strip():
        raise ImportFileError("the file is empty")
    if "\x00" in head:
        raise ImportFileError("the file contains NUL characters: it looks binary, not CSV text")
    if head.lstrip()[:1] in ("[", "{"):
        raise ImportFileError("the file looks like JSON, not CSV: import it with format json or jsonl")
    if csv.field_size_limit() < MAX_CSV_CELL_CHARS:
        csv.field_size_limit(MAX_CSV_CELL_CHARS)
    with _open_text(path, codec) as handle:
        reader = csv.reader(handle, strict=True)
        try:
            header = next(reader)
        except csv.Error as error:
            raise ImportFileError(f"line 1 (the header): {error}") from None
        indices = _csv_indices(spec, header)
        build = builder.build
        number = 0
        line = reader.line_num
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as error:
                raise ImportFileError(_csv_error_message(error, line + 1)) from None
            number += 1
            line = reader.line_num
            width = len(row)
            values = [
                None if index < 0 or index >= width or (cell := row[index]) in NO_VALUE else cell for index in indices
            ]
            result = build(number, values, check_text=True)
            if result is None:
                continue
            if isinstance(result, ParsedRow):
                yield result
            else:
                yield from result


def _csv_indices(spec: _Spec, header: list[str]) -> list[int]:
    names = [cell.strip() for cell in header]
    if names:
        names[0] = names[0].lstrip("\ufeff")
    indices = []
    for slot, source in enumerate(spec.sources):
        if source is None:
            indices.append(-1)
            continue
        wanted = source.strip()
        found = [position for position, name in enumerate(names) if name == wanted]
        if not found:
            shown = ", ".join(name for name in names if name) or "(no column names)"
            hint = ""
            if len(names) == 1 and ";" in names[0]:
                hint = " (the columns seem to be separated by ';': only ',' is supported)"
            raise ImportFileError(
                f"column {source!r} (mapped to {spec.target_of(slot)}) is not in the header: {shown}{hint}"
            )
        if len(found) > 1:
            raise ImportFileError(f"column {source!r} (mapped to {spec.target_of(slot)}) appears twice in the header")
        indices.append(found[0])
    return indices


def _csv_error_message(error: csv.Error, start_line: int) -> str:
    text = str(error)
    if "unexpected end of data" in text:
        return f"line {start_line}: a quoted cell is never closed (the file ends inside it)"
    if "field larger than field limit" in text:
        return (
            f"line {start_line}: a cell is longer than {MAX_CSV_CELL_CHARS:,} characters "
            "(often a quote that is never closed)"
        )
    return f'line {start_line}: {text} (a quote inside a quoted cell must be doubled: "")'


def _json_values(obj: dict[str, Any], spec: _Spec) -> list[Any]:
    values = []
    for source in spec.sources:
        value = None if source is None else obj.get(source)
        if isinstance(value, str) and value in NO_VALUE:
            value = None
        values.append(value)
    return values


def _json_message(error: json.JSONDecodeError) -> str:
    return error.msg.removesuffix(" starting at")


def _json_decoder() -> json.JSONDecoder:
    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    return json.JSONDecoder(parse_constant=refuse)


def _suspicious(text: str, start: int = 0, end: int | None = None) -> bool:
    """Whether the raw JSON text may hold \\u0000 or a lone surrogate (checked for real only then)."""
    stop = len(text) if end is None else end
    return text.find("\\u", start, stop) >= 0 and any(
        text.find(needle, start, stop) >= 0 for needle in ("\\u0000", "\\ud", "\\uD")
    )


class _JsonIdSeen:
    """Whether any object had the external id's key; a file where none had it is refused at its end."""

    def __init__(self, spec: _Spec) -> None:
        self.key = spec.sources[0]
        self.seen = False
        self.first_keys: list[str] | None = None

    def note(self, obj: dict[str, Any]) -> None:
        if not self.seen:
            self.seen = self.key in obj
            if self.first_keys is None:
                self.first_keys = list(obj)[:20]

    def check(self) -> None:
        if not self.seen and self.first_keys is not None:
            keys = ", ".join(self.first_keys) or "(none)"
            raise ImportFileError(
                f"no object has the key {self.key!r} (mapped to external_id); the first object's keys: {keys}"
            )


def _parse_json_lines(path: Path, spec: _Spec, codec: str, builder: _RowBuilder) -> Rows:
    decoder = _json_decoder()
    ids = _JsonIdSeen(spec)
    first = True
    with path.open(encoding=codec) as handle:  # universal newlines: \r\n is a line end like \n
        number = 0
        while line := handle.readline(MAX_JSON_VALUE_CHARS):
            number += 1
            if len(line) >= MAX_JSON_VALUE_CHARS and not line.endswith("\n"):
                raise ImportFileError(f"line {number} is longer than {MAX_JSON_VALUE_CHARS:,} characters")
            text = line.strip()
            if not text:
                continue
            try:
                obj = decoder.decode(text)
            except json.JSONDecodeError as error:
                if first:
                    raise ImportFileError(
                        f"line {number}, column {error.colno}: not JSON Lines: {_json_message(error)}"
                    ) from None
                yield RowProblem(number, None, f"not valid JSON (column {error.colno}): {_json_message(error)}")
                continue
            except (ValueError, RecursionError) as error:
                message = "nested too deeply" if isinstance(error, RecursionError) else str(error)
                if first:
                    raise ImportFileError(f"line {number}: not JSON Lines: {message}") from None
                yield RowProblem(number, None, message)
                continue
            if not isinstance(obj, dict):
                if first:
                    hint = " (a JSON array file? import it with format json)" if isinstance(obj, list) else ""
                    raise ImportFileError(f"line {number} is {_kind(obj)}, not a JSON object{hint}")
                yield RowProblem(number, None, f"the line is {_kind(obj)}, not a JSON object")
                continue
            first = False
            ids.note(obj)
            result = builder.build(number, _json_values(obj, spec), check_text=_suspicious(text))
            if isinstance(result, ParsedRow):
                yield result
            elif result is not None:
                yield from result
    if first:
        raise ImportFileError("the file is empty (no JSON object on any line)")
    ids.check()


class _JsonArrayReader:
    """Element by element through a top-level JSON array, holding one element (plus a chunk) in memory."""

    def __init__(self, handle: TextIO) -> None:
        self.handle = handle
        self.decoder = _json_decoder()
        self.buffer = ""
        self.pos = 0
        self.eof = False
        self.lines_before = 0  # line breaks in the text already dropped from the buffer

    def more(self) -> bool:
        """Append a chunk (as large as the buffer, so a big element is read in a few steps); False at the end."""
        if self.eof:
            return False
        if len(self.buffer) - self.pos > MAX_JSON_VALUE_CHARS:
            raise ImportFileError(
                f"{self.where(self.pos)}: an element is longer than {MAX_JSON_VALUE_CHARS:,} characters"
            )
        chunk = self.handle.read(max(_CHUNK_CHARS, len(self.buffer) - self.pos))
        if not chunk:
            self.eof = True
            return False
        if self.pos > _CHUNK_CHARS:  # drop what is behind the cursor (positions before it are not used again)
            self.lines_before += self.buffer.count("\n", 0, self.pos)
            self.buffer = self.buffer[self.pos :]
            self.pos = 0
        self.buffer += chunk
        return True

    def where(self, pos: int) -> str:
        line = self.lines_before + self.buffer.count("\n", 0, pos) + 1
        column = pos - self.buffer.rfind("\n", 0, pos)
        return f"line {line}, column {column}"

    def next_char(self) -> str:
        """The next non-whitespace character (not consumed), or '' at the end of the file."""
        while True:
            self.pos = _JSON_WHITESPACE.match(self.buffer, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buffer):
                return self.buffer[self.pos]
            if not self.more():
                return ""

    def value(self, index: int) -> tuple[Any, bool]:
        """Decode the element at the cursor; also whether its raw text may hold \\u0000 or a lone surrogate."""
        while True:
            try:
                obj, end = self.decoder.raw_decode(self.buffer, self.pos)
            except json.JSONDecodeError as error:
                if self.more():
                    continue
                truncated = error.pos >= len(self.buffer) - 1 or error.msg.startswith("Unterminated")
                hint = " (the file ends there: it is truncated)" if truncated else ""
                message = _json_message(error)
                raise ImportFileError(f"{self.where(error.pos)} (element {index}): {message}{hint}") from None
            except RecursionError:
                raise ImportFileError(f"{self.where(self.pos)} (element {index}): nested too deeply") from None
            except ValueError as error:
                raise ImportFileError(f"{self.where(self.pos)} (element {index}): {error}") from None
            if end >= len(self.buffer) and self.more():
                continue  # a number may go on in the next chunk
            suspicious = _suspicious(self.buffer, self.pos, end)
            self.pos = end
            return obj, suspicious


def _parse_json_array(path: Path, spec: _Spec, codec: str, builder: _RowBuilder) -> Rows:
    ids = _JsonIdSeen(spec)
    with _open_text(path, codec) as handle:
        reader = _JsonArrayReader(handle)
        start = reader.next_char()
        if not start:
            raise ImportFileError("the file is empty")
        if start != "[":
            found = "a single object" if start == "{" else repr(reader.buffer[reader.pos : reader.pos + 20])
            raise ImportFileError(f"{reader.where(reader.pos)}: expected a JSON array of objects ('['), found {found}")
        reader.pos += 1
        number = 0
        while True:
            char = reader.next_char()
            if number and char == ",":
                reader.pos += 1
                char = reader.next_char()
                if char == "]":
                    raise ImportFileError(f"{reader.where(reader.pos)}: a comma before ']' is not valid JSON")
            elif char == "]":
                reader.pos += 1
                break
            elif number:
                if not char:
                    raise ImportFileError(f"the file ends inside the array, after element {number}: it is truncated")
                raise ImportFileError(f"{reader.where(reader.pos)}: expected ',' or ']' after element {number}")
            if not char:
                raise ImportFileError(f"the file ends inside the array, after element {number}: it is truncated")
            number += 1
            obj, suspicious = reader.value(number)
            if not isinstance(obj, dict):
                if number == 1:
                    raise ImportFileError(f"element 1 of the array is {_kind(obj)}: expected an array of objects")
                yield RowProblem(number, None, f"the element is {_kind(obj)}, not an object")
                continue
            ids.note(obj)
            result = builder.build(number, _json_values(obj, spec), check_text=suspicious)
            if isinstance(result, ParsedRow):
                yield result
            elif result is not None:
                yield from result
        if reader.next_char():
            raise ImportFileError(f"{reader.where(reader.pos)}: unexpected text after the end of the array")
    ids.check()


_Parser = Callable[[Path, _Spec, str, _RowBuilder], Rows]
_PARSERS: Final[dict[str, _Parser]] = {"csv": _parse_csv, "json": _parse_json_array, "jsonl": _parse_json_lines}
