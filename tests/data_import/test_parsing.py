"""The import file parser: CSV, JSON arrays and JSON Lines, against the quirks of DOMAIN.md ("Observed in the wild").

Pure tests (no database): each writes a small file in tmp_path and reads what `parse_rows` yields.
"""

from __future__ import annotations

import csv
import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from annotation_platform.data_import import parsing
from annotation_platform.data_import.parsing import (
    CHAT_PRESET,
    GENERIC_MAPPING,
    ImportFileError,
    MappingError,
    ParsedRow,
    RowProblem,
    effective_mapping,
    parse_rows,
    validate_encoding,
    validate_mapping,
)
from annotation_platform.item.schemas import MAX_CONTENT_LENGTH

CHAT_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "chat"
CHAT_HEADER = "user_id,turn_id,turn_text,reply_to_turn,thread"

Result = ParsedRow | RowProblem


def write(tmp_path: Path, data: str | bytes, name: str = "file") -> Path:
    path = tmp_path / name
    if isinstance(data, str):
        path.write_bytes(data.encode())
    else:
        path.write_bytes(data)
    return path


def parse(
    path: Path,
    file_format: str = "csv",
    mapping: dict[str, str] | None = None,
    container_type: str = "chat_room",
    encoding: str = "utf-8",
) -> list[Result]:
    return list(
        parse_rows(path, file_format=file_format, mapping=mapping, container_type=container_type, encoding=encoding)
    )


def rows_of(results: list[Result]) -> list[ParsedRow]:
    problems = [r for r in results if isinstance(r, RowProblem)]
    assert problems == []
    return [r for r in results if isinstance(r, ParsedRow)]


def problems_of(results: list[Result]) -> list[RowProblem]:
    return [r for r in results if isinstance(r, RowProblem)]


def file_error(path: Path, **kwargs: Any) -> str:
    with pytest.raises(ImportFileError) as caught:
        parse(path, **kwargs)
    return str(caught.value)


# --- mappings ---------------------------------------------------------------------------------------------------


def test_valid_mappings_pass() -> None:
    validate_mapping(CHAT_PRESET)
    validate_mapping(
        {
            "external_id": "id",
            "content": "text",
            "sequence": "position",
            "parent": "reply to",
            "metadata.user id": "user",
            "annotation.sentiment_2": "mood",
        }
    )


@pytest.mark.parametrize(
    ("mapping", "expected"),
    [
        ({"external_id": 3}, "not a number"),
        ({"external_id": None}, "not null"),
        ({"external_id": "id", "text": "content"}, "unknown target 'text'"),
        ({"external_id": "id", "metadata.": "x"}, "metadata key must be non-empty"),
        ({"external_id": "id", "annotation.Thread": "x"}, "annotation type is lower-case"),
        ({"external_id": "id", "annotation.": "x"}, "annotation type"),
        ({"external_id": "id", f"annotation.{'a' * 65}": "x"}, "annotation type"),
        ({"external_id": ""}, "source column name is empty"),
        ({"external_id": "id", "content": "  "}, "source column name is empty"),
        ({"content": "text"}, "no external_id target"),
        ({}, "no external_id target"),
    ],
)
def test_invalid_mappings_are_refused(mapping: dict[str, Any], expected: str) -> None:
    with pytest.raises(MappingError, match=expected):
        validate_mapping(mapping)


def test_a_mapping_error_lists_every_mistake() -> None:
    with pytest.raises(MappingError) as caught:
        validate_mapping({"content": 1, "colour": "c"})
    message = str(caught.value)
    assert "'content'" in message
    assert "'colour'" in message
    assert "external_id" in message


def test_a_mapping_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(MappingError, match="JSON object"):
        validate_mapping(["external_id"])  # type: ignore[arg-type]


def test_effective_mapping_defaults() -> None:
    assert (
        effective_mapping(None, "chat_room")
        == CHAT_PRESET
        == {
            "external_id": "turn_id",
            "content": "turn_text",
            "metadata.user_id": "user_id",
            "parent": "reply_to_turn",
            "annotation.thread": "thread",
        }
    )
    assert (
        effective_mapping(None, "documents") == GENERIC_MAPPING == {"external_id": "external_id", "content": "content"}
    )
    given = {"external_id": "id"}
    assert effective_mapping(given, "chat_room") == given
    with pytest.raises(MappingError):
        effective_mapping({"content": "x"}, "chat_room")


def test_validate_encoding() -> None:
    for name in ("utf-8", "UTF8", "latin-1", "cp1252", "utf-16"):
        validate_encoding(name)
    for name in ("klingon", "hex", "base64"):
        with pytest.raises(ValueError, match="unknown text encoding"):
            validate_encoding(name)


# --- CSV ----------------------------------------------------------------------------------------------------------


def test_chat_csv_with_the_preset(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"{CHAT_HEADER}\n"
        '1280,VAC_R10_001,"Olá! Sou o moderador.",,0\n'
        "1969,VAC_R10_002,Na minha opinião a vacinação deveria ser um dever.,,5\n"
        '2044,VAC_R10_017,"Concordo, mas ""obrigatório"" é\nforte demais.",VAC_R10_002,5\n',
    )
    rows = rows_of(parse(path))
    assert rows == [
        ParsedRow(
            1, "VAC_R10_001", "Olá! Sou o moderador.", None, None, {"user_id": "1280"}, {"thread": {"thread_id": "0"}}
        ),
        ParsedRow(
            2,
            "VAC_R10_002",
            "Na minha opinião a vacinação deveria ser um dever.",
            None,
            None,
            {"user_id": "1969"},
            {"thread": {"thread_id": "5"}},
        ),
        ParsedRow(
            3,
            "VAC_R10_017",
            'Concordo, mas "obrigatório" é\nforte demais.',
            None,
            "VAC_R10_002",
            {"user_id": "2044"},
            {"thread": {"thread_id": "5"}},
        ),
    ]


def test_every_target(tmp_path: Path) -> None:
    path = write(tmp_path, "id,text,pos,reply,lang,mood,topic\nA,hello,7,B,pt,happy,3\n")
    mapping = {
        "external_id": "id",
        "content": "text",
        "sequence": "pos",
        "parent": "reply",
        "metadata.language": "lang",
        "annotation.sentiment": "mood",
        "annotation.thread": "topic",
    }
    [row] = rows_of(parse(path, mapping=mapping))
    assert row == ParsedRow(
        1, "A", "hello", 7, "B", {"language": "pt"}, {"sentiment": {"value": "happy"}, "thread": {"thread_id": "3"}}
    )


def test_metadata_values_stay_strings_in_csv(tmp_path: Path) -> None:
    path = write(tmp_path, "external_id,content,n\nA,x,0012\n")
    [row] = rows_of(parse(path, mapping={**GENERIC_MAPPING, "metadata.n": "n"}))
    assert row.metadata == {"n": "0012"}


@pytest.mark.parametrize("empty", ["", "null", "NULL"])
def test_empty_and_null_cells_mean_no_value(tmp_path: Path, empty: str) -> None:
    path = write(tmp_path, f"{CHAT_HEADER}\n{empty},T1,{empty},{empty},{empty}\n")
    [row] = rows_of(parse(path))
    assert row == ParsedRow(1, "T1", "", None, None, {}, {})


def test_null_in_other_case_is_a_value(tmp_path: Path) -> None:
    path = write(tmp_path, f"{CHAT_HEADER}\n1,T1,Null,,nUlL\n")
    [row] = rows_of(parse(path))
    assert row.content == "Null"
    assert row.annotations == {"thread": {"thread_id": "nUlL"}}


def test_blank_rows_are_skipped_but_counted(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"{CHAT_HEADER},usage_count\n"
        "1,T1,a,,1,\n"
        ",,,,,0\n"  # blank in every mapped column (an unmapped cell does not count)
        "\n"  # an empty line
        "null,NULL,,null,,\n"
        "2,T2,b,,1,\n",
    )
    rows = rows_of(parse(path))
    assert [(r.number, r.external_id) for r in rows] == [(1, "T1"), (5, "T2")]


def test_a_row_with_values_but_no_external_id_is_a_problem(tmp_path: Path) -> None:
    path = write(tmp_path, f"{CHAT_HEADER}\n1,T1,a,,1\n1,,some text,,1\n2,null,,,3\n3,T3,c,,1\n")
    results = parse(path)
    assert [r.external_id for r in results if isinstance(r, ParsedRow)] == ["T1", "T3"]
    assert problems_of(results) == [
        RowProblem(2, "turn_id", "no external id, but the row has other values"),
        RowProblem(3, "turn_id", "no external id, but the row has other values"),
    ]


def test_external_ids_are_trimmed_and_checked(tmp_path: Path) -> None:
    long_id = "x" * 256
    path = write(tmp_path, f'external_id,content\n  A  ,a\n"   ",b\n{long_id},c\n"B\nC",d\n')
    results = parse(path, container_type="documents")
    assert [r.external_id for r in results if isinstance(r, ParsedRow)] == ["A"]
    assert [(p.row, p.column, p.message) for p in problems_of(results)] == [
        (2, "external_id", "external id is only spaces"),
        (3, "external_id", "external id is longer than 255 characters"),
        (4, "external_id", "external id contains a line break"),
    ]


def test_duplicate_external_ids_are_problems_on_the_later_rows(tmp_path: Path) -> None:
    path = write(tmp_path, "external_id,content\na,1\nb,2\n\nc,3\nb,4\na,5\nb,6\nd,7\n")
    results = parse(path, container_type="documents")
    assert [(r.number, r.external_id) for r in results if isinstance(r, ParsedRow)] == [
        (1, "a"),
        (2, "b"),
        (4, "c"),
        (8, "d"),
    ]
    assert problems_of(results) == [
        RowProblem(5, "external_id", "external id 'b' repeats row 2"),
        RowProblem(6, "external_id", "external id 'a' repeats row 1"),
        RowProblem(7, "external_id", "external id 'b' repeats row 2"),
    ]


def test_duplicates_are_found_among_ids_spilled_to_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parsing, "SEEN_IDS_IN_MEMORY", 2)
    path = write(tmp_path, "external_id,content\na,1\nb,2\nc,3\nd,4\ne,5\na,6\nd,7\nf,8\ne,9\nb,10\n")
    results = parse(path, container_type="documents")
    assert [r.external_id for r in results if isinstance(r, ParsedRow)] == ["a", "b", "c", "d", "e", "f"]
    assert problems_of(results) == [
        RowProblem(6, "external_id", "external id 'a' repeats row 1"),
        RowProblem(7, "external_id", "external id 'd' repeats row 4"),
        RowProblem(9, "external_id", "external id 'e' repeats row 5"),
        RowProblem(10, "external_id", "external id 'b' repeats row 2"),
    ]


def test_a_duplicate_of_a_row_with_other_problems_still_counts(tmp_path: Path) -> None:
    path = write(tmp_path, "external_id,content,sequence\na,1,x\na,2,1\n")
    mapping = {**GENERIC_MAPPING, "sequence": "sequence"}
    assert problems_of(parse(path, mapping=mapping)) == [
        RowProblem(1, "sequence", "sequence must be a non-negative integer, not 'x'"),
        RowProblem(2, "external_id", "external id 'a' repeats row 1"),
    ]


def test_sequence(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "external_id,content,seq\na,,0\nb,, 12 \nc,,-1\nd,,1.5\ne,,x\nf,,\ng,,\u0661\nh,,99999999999999999999\n",
    )
    results = parse(path, mapping={**GENERIC_MAPPING, "sequence": "seq"})
    assert [(r.external_id, r.sequence) for r in results if isinstance(r, ParsedRow)] == [
        ("a", 0),
        ("b", 12),
        ("f", None),
    ]
    assert [(p.row, p.column) for p in problems_of(results)] == [
        (3, "seq"),
        (4, "seq"),
        (5, "seq"),
        (7, "seq"),
        (8, "seq"),
    ]
    assert problems_of(results)[0].message == "sequence must be a non-negative integer, not '-1'"
    assert problems_of(results)[-1].message == "sequence must be at most 2**62"


def test_sequence_is_none_when_not_mapped(tmp_path: Path) -> None:
    path = write(tmp_path, "external_id,content,sequence\na,x,5\n")
    [row] = rows_of(parse(path, container_type="documents"))
    assert row.sequence is None


def test_extra_columns_and_cells_are_ignored_and_short_rows_have_no_value(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "user_id,turn_id,turn_text,reply_to_turn,thread,description,\n"
        "1,T1,a,,1,something,\n"  # an unnamed trailing column
        "2,T2,b,,2,x,y,z,w\n"  # more cells than the header
        "3,T3\n",  # fewer
    )
    rows = rows_of(parse(path))
    assert [(r.external_id, r.content, r.annotations) for r in rows] == [
        ("T1", "a", {"thread": {"thread_id": "1"}}),
        ("T2", "b", {"thread": {"thread_id": "2"}}),
        ("T3", "", {}),
    ]


def test_header_names_are_matched_without_surrounding_spaces(tmp_path: Path) -> None:
    path = write(tmp_path, "external_id , content\nA,x\n")
    assert rows_of(parse(path, container_type="documents"))[0].content == "x"


def test_a_missing_mapped_column_is_a_file_error(tmp_path: Path) -> None:
    path = write(tmp_path, "turn_id2,text,thread\nA,x,1\n")
    message = file_error(path, mapping={"external_id": "turn_id", "content": "text"})
    assert message == "column 'turn_id' (mapped to external_id) is not in the header: turn_id2, text, thread"
    # every mapped column is required, not only the external id
    message = file_error(path, mapping={"external_id": "turn_id2", "annotation.thread": "Thread_zuil"})
    assert message.startswith("column 'Thread_zuil' (mapped to annotation.thread) is not in the header")


def test_the_preset_on_a_file_with_another_thread_column_says_which(tmp_path: Path) -> None:
    path = write(tmp_path, "user_id,turn_id,turn_text,reply_to_turn,Thread_zuil\n1,T1,a,,1\n")
    assert "column 'thread' (mapped to annotation.thread) is not in the header" in file_error(path)


def test_a_mapped_column_twice_in_the_header_is_a_file_error(tmp_path: Path) -> None:
    path = write(tmp_path, "external_id,content,content\nA,x,y\n")
    assert "appears twice" in file_error(path, container_type="documents")


def test_semicolon_separated_files_get_a_hint(tmp_path: Path) -> None:
    path = write(tmp_path, "external_id;content\nA;x\n")
    assert "separated by ';'" in file_error(path, container_type="documents")


def test_bom_and_crlf(tmp_path: Path) -> None:
    data = '\ufeffuser_id,turn_id,turn_text,reply_to_turn,thread\r\n1,T1,"two\r\nlines",,1\r\n2,T2,b,T1,2\r\n'
    path = write(tmp_path, data.encode("utf-8"))
    rows = rows_of(parse(path))
    assert [(r.external_id, r.content, r.parent_external_id) for r in rows] == [
        ("T1", "two\r\nlines", None),  # the line break inside the quoted cell is kept as written
        ("T2", "b", "T1"),
    ]
    assert rows[0].metadata == {"user_id": "1"}  # the BOM is not part of the first column's name


def test_latin_1(tmp_path: Path) -> None:
    text = f"{CHAT_HEADER}\n1,T1,Não é obrigatório? Ação!,,1\n"
    path = write(tmp_path, text.encode("latin-1"))
    [row] = rows_of(parse(path, encoding="latin-1"))
    assert row.content == "Não é obrigatório? Ação!"


def test_cp1252(tmp_path: Path) -> None:
    path = write(tmp_path, "external_id,content\nA,“citação” \u2013 5€\n".encode("cp1252"))
    [row] = rows_of(parse(path, container_type="documents", encoding="cp1252"))
    assert row.content == "“citação” \u2013 5€"


def test_latin_1_bytes_read_as_utf_8_is_a_file_error_that_says_where(tmp_path: Path) -> None:
    lines = ["external_id,content"] + [f"T{i},plain" for i in range(5000)] + ["X,não"]
    path = write(tmp_path, "\n".join(lines).encode("latin-1"))
    message = file_error(path, container_type="documents")
    assert message.startswith("line 5002 (byte ")
    assert "bytes e3 are not valid utf-8" in message
    assert "encoding latin-1 or cp1252" in message


def test_a_utf_8_bom_with_another_encoding_declared_is_a_file_error(tmp_path: Path) -> None:
    path = write(tmp_path, "\ufeffexternal_id,content\nA,é\n".encode())
    assert "UTF-8 byte-order mark" in file_error(path, container_type="documents", encoding="latin-1")


def test_utf_16(tmp_path: Path) -> None:
    path = write(tmp_path, "external_id,content\nA,ação\n".encode("utf-16"))
    assert "UTF-16 byte-order mark" in file_error(path, container_type="documents")
    [row] = rows_of(parse(path, container_type="documents", encoding="utf-16"))
    assert row.content == "ação"


def test_formula_looking_cells_are_kept_verbatim(tmp_path: Path) -> None:
    formulas = ['=HYPERLINK("http://x","y")', "+1+1", "-2", "@SUM(A1:A2)", "\tx", "=1+1"]
    with (tmp_path / "f.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["external_id", "content", "note"])
        writer.writerows([f"T{i}", value, value] for i, value in enumerate(formulas))
    rows = rows_of(parse(tmp_path / "f.csv", mapping={**GENERIC_MAPPING, "metadata.note": "note"}))
    assert [r.content for r in rows] == formulas
    assert [r.metadata["note"] for r in rows] == formulas


def test_a_nul_character_in_a_cell_is_a_row_problem(tmp_path: Path) -> None:
    filler = "".join(f"T{i},{'x' * 60}\n" for i in range(1200))  # past the first 64 KiB the parser sniffs
    path = write(tmp_path, f"external_id,content\n{filler}BAD,a\x00b\n")
    results = parse(path, container_type="documents")
    assert problems_of(results) == [
        RowProblem(1201, "content", "content contains a NUL character, which cannot be stored")
    ]


def test_content_longer_than_the_limit_is_a_row_problem(tmp_path: Path) -> None:
    path = write(tmp_path, f"external_id,content\nA,{'x' * (MAX_CONTENT_LENGTH + 1)}\nB,ok\n")
    results = parse(path, container_type="documents")
    assert [r.external_id for r in results if isinstance(r, ParsedRow)] == ["B"]
    assert problems_of(results) == [RowProblem(1, "content", "content is longer than 1,000,000 characters")]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "the file is empty"),
        (b"\r\n\r\n", "the file is empty"),
        (bytes(range(256)) * 40, "not valid utf-8"),
        (b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 100, "looks binary"),
        (b'[{"external_id": "a"}]', "looks like JSON"),
        (b'external_id,content\nA,"never closed\nB,x\n', "line 2: a quoted cell is never closed"),
        (b'external_id,content\nA,ok\nB,"a"b"\n', "line 3: ',' expected after '\"'"),
    ],
)
def test_unreadable_csv_files(tmp_path: Path, data: bytes, expected: str) -> None:
    path = write(tmp_path, data)
    assert expected in file_error(path, container_type="documents")


def test_binary_read_as_latin_1_is_still_refused(tmp_path: Path) -> None:
    path = write(tmp_path, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 10)
    assert "looks binary" in file_error(path, container_type="documents", encoding="latin-1")


def test_unknown_format_encoding_and_bad_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "external_id,content\nA,x\n")
    assert "unknown format 'xlsx'" in file_error(path, file_format="xlsx")
    assert "unknown text encoding 'klingon'" in file_error(path, encoding="klingon")
    with pytest.raises(MappingError):
        parse(path, mapping={"content": "content"})


def test_header_only_gives_no_rows(tmp_path: Path) -> None:
    assert parse(write(tmp_path, f"{CHAT_HEADER}\r\n")) == []


# --- JSON ---------------------------------------------------------------------------------------------------------


def test_json_array(tmp_path: Path) -> None:
    objects = [
        {"turn_id": "T1", "turn_text": "a", "user_id": 1280, "reply_to_turn": None, "thread": 5},
        {"turn_id": 2, "turn_text": 'b\n"c"', "user_id": {"name": "x", "tags": [1, 2]}, "reply_to_turn": "T1"},
        {},  # blank in every mapped key: skipped
        {"turn_id": "T3", "turn_text": "", "user_id": "null", "reply_to_turn": "NULL", "thread": ["a", "b"]},
    ]
    path = write(tmp_path, json.dumps(objects, ensure_ascii=False, indent=2))
    assert rows_of(parse(path, file_format="json")) == [
        ParsedRow(1, "T1", "a", None, None, {"user_id": 1280}, {"thread": {"thread_id": 5}}),
        ParsedRow(2, "2", 'b\n"c"', None, "T1", {"user_id": {"name": "x", "tags": [1, 2]}}, {}),
        ParsedRow(4, "T3", "", None, None, {}, {"thread": {"thread_id": ["a", "b"]}}),
    ]


def test_json_value_types(tmp_path: Path) -> None:
    objects = [
        {"external_id": "a", "content": 12, "sequence": 3},
        {"external_id": "b", "content": 1.5, "sequence": "4"},
        {"external_id": True, "content": "x"},
        {"external_id": "d", "content": ["x"]},
        {"external_id": "e", "sequence": -1},
        {"external_id": "f", "sequence": 2.0},
        {"external_id": "g", "sequence": False},
        {"external_id": 1.5},
    ]
    path = write(tmp_path, json.dumps(objects))
    results = parse(path, file_format="json", mapping={**GENERIC_MAPPING, "sequence": "sequence"})
    assert [(r.external_id, r.content, r.sequence) for r in results if isinstance(r, ParsedRow)] == [
        ("a", "12", 3),
        ("b", "1.5", 4),
    ]
    assert [(p.row, p.column, p.message) for p in problems_of(results)] == [
        (3, "external_id", "external id must be text or an integer, not a boolean"),
        (4, "content", "content must be text, not an array"),
        (5, "sequence", "sequence must be a non-negative integer, not -1"),
        (6, "sequence", "sequence must be a non-negative integer, not a number"),
        (7, "sequence", "sequence must be a non-negative integer, not a boolean"),
        (8, "external_id", "external id must be text or an integer, not a number"),
    ]


def test_json_missing_id_duplicates_and_non_objects(tmp_path: Path) -> None:
    path = write(tmp_path, '[{"external_id": "a"}, {"content": "x"}, 3, {"external_id": "a"}, [1]]')
    results = parse(path, file_format="json", container_type="documents")
    assert rows_of([r for r in results if isinstance(r, ParsedRow)]) == [ParsedRow(1, "a", "", None, None, {}, {})]
    assert problems_of(results) == [
        RowProblem(2, "external_id", "no external id, but the row has other values"),
        RowProblem(3, None, "the element is a number, not an object"),
        RowProblem(4, "external_id", "external id 'a' repeats row 1"),
        RowProblem(5, None, "the element is an array, not an object"),
    ]


def test_json_nul_and_lone_surrogates_are_row_problems(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[{"external_id": "a", "content": "x\\u0000y"}, {"external_id": "b", "content": "\\ud800"},'
        ' {"external_id": "c", "content": "\\ud83d\\ude00 \\\\u0000", "m": {"k": ["\\u0000"]}}]',
    )
    results = parse(path, file_format="json", mapping={**GENERIC_MAPPING, "metadata.m": "m"})
    assert [(p.row, p.column) for p in problems_of(results)] == [(1, "content"), (2, "content"), (3, "m")]
    assert "NUL" in problems_of(results)[0].message
    assert "unpaired surrogate" in problems_of(results)[1].message


def test_json_empty_array_and_whitespace(tmp_path: Path) -> None:
    assert parse(write(tmp_path, "\ufeff \r\n [ \r\n ] \r\n"), file_format="json") == []


def test_json_crlf_and_bom(tmp_path: Path) -> None:
    path = write(tmp_path, '\ufeff[\r\n  {"external_id": "a",\r\n "content": "x"}\r\n]\r\n'.encode())
    assert rows_of(parse(path, file_format="json", container_type="documents"))[0].content == "x"


def test_json_array_spanning_many_chunks_matches_json_load(tmp_path: Path) -> None:
    objects: list[dict[str, Any]] = [
        {"external_id": f"id{i}", "content": "é" * (i % 300), "n": i * 1234567, "f": i / 7, "s": '\\"]'}
        for i in range(4000)
    ]
    objects[1234]["content"] = "y" * 300_000  # one element larger than any chunk
    path = write(tmp_path, json.dumps(objects, ensure_ascii=False))
    mapping = {**GENERIC_MAPPING, "metadata.n": "n", "metadata.f": "f", "metadata.s": "s"}
    rows = rows_of(parse(path, file_format="json", mapping=mapping))
    assert [(r.external_id, r.content, r.metadata) for r in rows] == [
        (o["external_id"], o["content"], {"n": o["n"], "f": o["f"], "s": o["s"]}) for o in objects
    ]
    # numbers are not cut where a chunk ends: compact JSON of bare numbers that straddle chunk boundaries
    numbers = "[" + ",".join(f'{{"external_id":{10**12 + i}}}' for i in range(10000)) + "]"
    ids = [
        r.external_id
        for r in rows_of(
            parse(write(tmp_path, numbers, "n.json"), file_format="json", mapping={"external_id": "external_id"})
        )
    ]
    assert ids == [str(10**12 + i) for i in range(10000)]


def test_a_json_array_truncated_far_into_the_file_says_where(tmp_path: Path) -> None:
    text = "[\n" + ",\n".join(json.dumps({"external_id": f"id{i}", "content": "x" * 50}) for i in range(10_000))
    path = write(tmp_path, text[: text.index('"id9000"') + 3])
    message = file_error(path, file_format="json", container_type="documents")
    assert message == "line 9002, column 17 (element 9001): Unterminated string (the file ends there: it is truncated)"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("", "the file is empty"),
        ('{"external_id": "a"}', "line 1, column 1: expected a JSON array of objects ('['), found a single object"),
        ("external_id,content\na,b\n", "expected a JSON array of objects ('['), found 'external_id,content"),
        ("[1, 2]", "element 1 of the array is a number: expected an array of objects"),
        (
            '[{"external_id": "a"},\n {"external_id": "b", "content": "cut',
            "line 2, column 34 (element 2): Unterminated string (the file ends there: it is truncated)",
        ),
        (
            '[{"external_id": "a"},\n {"external_id": "b"}',
            "the file ends inside the array, after element 2: it is truncated",
        ),
        ('[{"external_id": "a"},\n', "the file ends inside the array, after element 1: it is truncated"),
        (
            '[{"external_id": "a"',
            "line 1, column 21 (element 1): Expecting ',' delimiter (the file ends there: it is truncated)",
        ),
        ('[{"external_id": "a"},]', "a comma before ']' is not valid JSON"),
        ('[{"external_id": "a"} {"external_id": "b"}]', "line 1, column 23: expected ',' or ']' after element 1"),
        ('[{"external_id": "a"}] x', "line 1, column 24: unexpected text after the end of the array"),
        ('[{"external_id": NaN}]', "(element 1): NaN is not valid JSON"),
        ('[{"external_id": "a"}, {"external_id": Infinity}]', "(element 2): Infinity is not valid JSON"),
        ("[" * 100_000, "nested too deeply"),
        (
            '[{"id": "a"}, {"id": "b"}]',
            "no object has the key 'external_id' (mapped to external_id); the first object's keys: id",
        ),
    ],
)
def test_unreadable_json_files(tmp_path: Path, data: str, expected: str) -> None:
    message = file_error(write(tmp_path, data), file_format="json", container_type="documents")
    assert expected in message


def test_json_garbage(tmp_path: Path) -> None:
    path = write(tmp_path, bytes(range(256)) * 10)
    assert "not valid utf-8" in file_error(path, file_format="json")
    assert "expected a JSON array" in file_error(path, file_format="json", encoding="latin-1")


# --- JSON Lines ---------------------------------------------------------------------------------------------------


def test_json_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '\ufeff{"turn_id": "T1", "turn_text": "a", "user_id": 7, "thread": "5"}\r\n'
        "\r\n"
        "   \n"
        '{"turn_id": "T2", "turn_text": "b", "reply_to_turn": "T1", "extra": 1}\n'
        '{"turn_id": null, "turn_text": ""}\n'
        '{"turn_id": "T3", "turn_text": "c"}',  # no final line break
    )
    assert rows_of(parse(path, file_format="jsonl")) == [
        ParsedRow(1, "T1", "a", None, None, {"user_id": 7}, {"thread": {"thread_id": "5"}}),
        ParsedRow(4, "T2", "b", None, "T1", {}, {}),
        ParsedRow(6, "T3", "c", None, None, {}, {}),
    ]


def test_json_lines_bad_lines_are_row_problems(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '{"external_id": "a"}\n'
        "not json\n"
        "[1, 2]\n"
        '{"external_id": "b", "content": NaN}\n'
        '{"external_id": "a"}\n'
        '{"external_id": "c", "content": "x\\u0000"}\n'
        '{"external_id": "d", "content": "cut',
    )
    results = parse(path, file_format="jsonl", container_type="documents")
    assert [r.external_id for r in results if isinstance(r, ParsedRow)] == ["a"]
    assert [(p.row, p.column, p.message) for p in problems_of(results)] == [
        (2, None, "not valid JSON (column 1): Expecting value"),
        (3, None, "the line is an array, not a JSON object"),
        (4, None, "NaN is not valid JSON"),
        (5, "external_id", "external id 'a' repeats row 1"),
        (6, "content", "content contains a NUL character, which cannot be stored"),
        (7, None, "not valid JSON (column 33): Unterminated string"),
    ]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("", "the file is empty (no JSON object on any line)"),
        ("\n\n  \n", "the file is empty"),
        ("external_id,content\na,b\n", "line 1, column 1: not JSON Lines: Expecting value"),
        ('\n[{"external_id": "a"},\n{"external_id": "b"}]\n', "line 2, column 23: not JSON Lines: Expecting value"),
        ('[{"external_id": "a"}, {"external_id": "b"}]', "line 1 is an array, not a JSON object (a JSON array file?"),
        ('"text"\n{"external_id": "a"}', "line 1 is a string, not a JSON object"),
        ('{"id": "a"}\n{"id": "b"}\n', "no object has the key 'external_id'"),
    ],
)
def test_unreadable_json_lines_files(tmp_path: Path, data: str, expected: str) -> None:
    assert expected in file_error(write(tmp_path, data), file_format="jsonl", container_type="documents")


def test_json_lines_garbage(tmp_path: Path) -> None:
    path = write(tmp_path, b"\x00\x01\x02garbage\n" * 10)
    assert "not JSON Lines" in file_error(path, file_format="jsonl")


# --- the real files and a large one ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chat_dir() -> Path:
    if not (CHAT_DIR / "VAC_R10-joao.csv").is_file():
        pytest.skip(f"the real chat files are not here ({CHAT_DIR} is only beside the project on the team's machines)")
    return CHAT_DIR


def _reference(path: Path, thread_column: str) -> list[dict[str, str]]:
    """The same file through csv.DictReader, for comparison."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return [row for row in csv.DictReader(handle) if row["turn_id"]]


@pytest.mark.parametrize(
    ("name", "mapping"),
    [
        ("VAC_R10-joao.csv", None),  # the chat preset
        ("VAC_R10-zuil.csv", {**CHAT_PRESET, "annotation.thread": "Thread_zuil"}),
    ],
)
def test_the_real_chat_files(chat_dir: Path, name: str, mapping: dict[str, str] | None) -> None:
    path = chat_dir / name
    rows = rows_of(parse(path, mapping=mapping))
    assert len(rows) == 160
    assert [r.number for r in rows] == list(range(1, 161))  # joao's row 161 (blank but for usage_count) skipped
    assert [r.external_id for r in rows] == [f"VAC_R10_{i:03d}" for i in range(1, 161)]
    thread_column = (mapping or CHAT_PRESET)["annotation.thread"]
    reference = _reference(path, thread_column)
    assert [r.content for r in rows] == [ref["turn_text"] for ref in reference]
    assert [r.annotations for r in rows] == [{"thread": {"thread_id": ref[thread_column]}} for ref in reference]
    assert [r.parent_external_id for r in rows] == [ref["reply_to_turn"] or None for ref in reference]
    assert [r.metadata for r in rows] == [{"user_id": ref["user_id"]} for ref in reference]
    assert all(r.sequence is None for r in rows)
    texts = [r.content for r in rows]
    assert any('"' in text for text in texts)
    assert any("\n" in text for text in texts)
    assert any(char in text for text in texts for char in "ãçéêóú")
    assert rows[0].content.startswith("Olá! Sou o moderador.")
    assert sum(r.parent_external_id is not None for r in rows) > 0


def test_the_real_files_share_turns_and_differ_in_threads(chat_dir: Path) -> None:
    joao = rows_of(parse(chat_dir / "VAC_R10-joao.csv"))
    zuil = rows_of(parse(chat_dir / "VAC_R10-zuil.csv", mapping={**CHAT_PRESET, "annotation.thread": "Thread_zuil"}))
    assert [(r.external_id, r.content, r.parent_external_id) for r in joao] == [
        (r.external_id, r.content, r.parent_external_id) for r in zuil
    ]
    assert [r.annotations for r in joao] != [r.annotations for r in zuil]


def test_memory_stays_flat_on_a_large_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parsing, "SEEN_IDS_IN_MEMORY", 10_000)
    path = tmp_path / "large.csv"
    turns = 200_000
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write("user_id,turn_id,turn_text,reply_to_turn,thread\r\n")
        for i in range(turns):
            reply = f"T{i - 1:07d}" if i % 3 else ""
            handle.write(
                f'{1000 + i % 50},T{i:07d},"Turn {i}, with a comma, ""quotes"" and words.",{reply},{i % 12}\r\n'
            )
    assert path.stat().st_size > 14_000_000
    count = 0
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        for result in parse_rows(path, file_format="csv", mapping=None, container_type="chat_room"):
            assert isinstance(result, ParsedRow)
            count += 1
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    assert count == turns
    # the file is ~15 MB and has 200,000 ids; 10,000 of them are kept in memory, the rest on disk
    assert peak < 5_000_000, f"peak memory growth {peak / 1e6:.1f} MB"


def nested(levels: int) -> Any:
    value: Any = "leaf"
    for _ in range(levels):
        value = {"deeper": value}
    return value


@pytest.mark.parametrize("file_format", ["json", "jsonl"])
def test_metadata_and_labels_beyond_the_api_limits_are_row_problems(tmp_path: Path, file_format: str) -> None:
    """The same depth and size caps as the API, so an import cannot store what reads could not serve."""
    records = [
        {"id": "ok", "text": "fine", "m": {"a": 1}, "label": "x"},
        {"id": "deep", "text": "t", "m": nested(300), "label": "x"},
        {"id": "big", "text": "t", "m": "x" * 70_000, "label": "x"},
        {"id": "deep-label", "text": "t", "m": "m", "label": nested(40)},
        {"id": "big-label", "text": "t", "m": "m", "label": ["y" * 1000] * 80},
    ]
    lines = "\n".join(json.dumps(record) for record in records)
    data = json.dumps(records) if file_format == "json" else lines
    mapping = {"external_id": "id", "content": "text", "metadata.m": "m", "annotation.topic": "label"}

    results = parse(write(tmp_path, data), file_format=file_format, mapping=mapping)

    assert [row.external_id for row in results if isinstance(row, ParsedRow)] == ["ok"]
    problems = {(problem.row, problem.column): problem.message for problem in problems_of(results)}
    assert set(problems) == {(2, "m"), (3, "m"), (4, "label"), (5, "label")}
    assert "nested deeper than 16 levels" in problems[2, "m"]
    assert "larger than 65536 bytes" in problems[3, "m"]
    assert "nested deeper" in problems[4, "label"]
    assert "larger than" in problems[5, "label"]


def test_a_csv_metadata_cell_beyond_the_api_size_limit_is_a_row_problem(tmp_path: Path) -> None:
    path = write(tmp_path, f"turn_id,turn_text,user_id\nt1,hello,u1\nt2,hi,{'u' * 70_000}\n")

    results = parse(path, mapping={"external_id": "turn_id", "content": "turn_text", "metadata.user_id": "user_id"})

    assert [row.external_id for row in results if isinstance(row, ParsedRow)] == ["t1"]
    [problem] = problems_of(results)
    assert (problem.row, problem.column) == (2, "user_id")
    assert "larger than 65536 bytes" in problem.message
