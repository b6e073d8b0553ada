"""The two real exports of one chat room (VAC_R10, two annotators), loaded through the public API.

The files live in `../shared/data/chat/`, beside the project on the team's machines and in CI only; elsewhere
these tests skip. They are parsed here with the csv module the way a user's script would (DOMAIN.md describes the
quirks), then sent with the bulk endpoints: items once, then each annotator's `thread` labels as that annotator.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Actor, Api

CHAT_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "chat"
ROOM = "VAC_R10"
TURNS = 160
FILES = {"joao": ("VAC_R10-joao.csv", "thread"), "zuil": ("VAC_R10-zuil.csv", "Thread_zuil")}
ITEM_COLUMNS = ("turn_id", "turn_text", "user_id", "reply_to_turn")
NO_VALUE = frozenset({"", "null", "NULL"})


@dataclass(frozen=True)
class Turn:
    turn_id: str
    text: str
    user_id: str | None
    reply_to: str | None
    thread: str | None


def _value(cell: str | None) -> str | None:
    return None if cell is None or cell in NO_VALUE else cell


def read_turns(path: Path, thread_column: str) -> list[Turn]:
    """One Turn per data row; extra and unnamed columns ignored, rows empty in every mapped column skipped."""
    turns = []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        for number, row in enumerate(csv.DictReader(handle), start=2):
            values = {column: _value(row.get(column)) for column in (*ITEM_COLUMNS, thread_column)}
            if all(value is None for value in values.values()):
                continue
            turn_id = values["turn_id"]
            assert turn_id is not None, f"{path.name} line {number}: a row with content but no turn_id"
            turns.append(
                Turn(
                    turn_id=turn_id,
                    text=values["turn_text"] or "",
                    user_id=values["user_id"],
                    reply_to=values["reply_to_turn"],
                    thread=values[thread_column],
                )
            )
    return turns


@pytest.fixture(scope="module")
def chat_files() -> dict[str, list[Turn]]:
    if not (CHAT_DIR / FILES["joao"][0]).is_file():
        pytest.skip(f"the real chat files are not here ({CHAT_DIR} is only beside the project on the team's machines)")
    return {annotator: read_turns(CHAT_DIR / name, column) for annotator, (name, column) in FILES.items()}


async def test_both_annotators_threads_load_through_the_bulk_endpoints(
    api: Api, chat_files: dict[str, list[Turn]]
) -> None:
    turns = chat_files["joao"]
    # what makes the checks below meaningful: one room of 160 turns, labelled differently by the two annotators,
    # with texts that break naive CSV or encoding handling
    assert len(turns) == TURNS
    assert [(t.turn_id, t.text) for t in chat_files["zuil"]] == [(t.turn_id, t.text) for t in turns]
    assert [t.thread for t in turns] != [t.thread for t in chat_files["zuil"]]
    texts = [t.text for t in turns]
    assert any('"' in text for text in texts)
    assert any("\n" in text for text in texts)
    assert any(char in text for text in texts for char in "ãçéêóú")
    owner = await api.user("owner")
    project = await api.project(owner, name="Vaccination debates")
    annotators: dict[str, Actor] = {}
    for name in FILES:
        annotators[name] = await api.user(name)
        await api.add_member(project, owner, annotators[name], "annotator")
    container = await api.container(project, owner, name=ROOM)
    known = {t.turn_id for t in turns}
    rows: list[dict[str, Any]] = []
    for turn in turns:
        row: dict[str, Any] = {"external_id": turn.turn_id, "content": turn.text, "metadata": {"user_id": turn.user_id}}
        if turn.reply_to in known:
            row["parent_external_id"] = turn.reply_to
        rows.append(row)

    created = await api.client.post(
        f"/api/v1/containers/{container['id']}/items/bulk", json={"items": rows}, headers=owner.headers
    )
    assert created.status_code == 201, created.text
    for name, actor in annotators.items():
        labels = [
            {"item_external_id": t.turn_id, "type": "thread", "data": {"thread_id": t.thread}} for t in chat_files[name]
        ]
        response = await api.client.post(
            f"/api/v1/containers/{container['id']}/annotations/bulk", json={"items": labels}, headers=actor.headers
        )
        assert response.status_code == 201, response.text
        assert len(response.json()["items"]) == TURNS

    listed = await api.client.get(
        f"/api/v1/containers/{container['id']}/items",
        params={"limit": 500, "include_total": "true"},
        headers=owner.headers,
    )
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert listed.json()["total"] == len(items) == TURNS
    assert [item["external_id"] for item in items] == [t.turn_id for t in turns]  # file order
    assert [item["content"].encode() for item in items] == [t.text.encode() for t in turns]  # byte-identical
    assert [item["metadata"] for item in items] == [{"user_id": t.user_id} for t in turns]
    id_of = {item["external_id"]: item["id"] for item in items}
    assert [item["parent_id"] for item in items] == [id_of.get(t.reply_to) if t.reply_to else None for t in turns]
    assert sum(item["parent_id"] is not None for item in items) > 0

    everything = await api.client.get(
        f"/api/v1/containers/{container['id']}/annotations",
        params={"limit": 500, "include_total": "true"},
        headers=owner.headers,
    )
    assert everything.status_code == 200, everything.text
    assert everything.json()["total"] == len(everything.json()["items"]) == 2 * TURNS
    external_id_of = {item_id: external_id for external_id, item_id in id_of.items()}
    for name, actor in annotators.items():
        mine = await api.client.get(
            f"/api/v1/containers/{container['id']}/annotations",
            params={"limit": 500, "created_by": actor.id, "type": "thread"},
            headers=owner.headers,
        )
        assert mine.status_code == 200, mine.text
        annotations = mine.json()["items"]
        assert {a["created_by"] for a in annotations} == {actor.id}
        labels = {external_id_of[a["item_id"]]: a["data"] for a in annotations}
        assert len(annotations) == len(labels) == TURNS, "one label per turn"
        assert labels == {t.turn_id: {"thread_id": t.thread} for t in chat_files[name]}
