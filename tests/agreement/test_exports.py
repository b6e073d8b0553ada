"""Gold labels in exports (their own `thread:gold` column), and the reply-structure format of the IRC
disentanglement corpus, whose threads are the connected components of its links."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import httpx

from annotation_platform.data_export.service import run_export
from tests.conftest import Actor, Api, Team, problem

# Six turns with reply-to parents, and one annotator's threads a / b.
TURNS = [
    ("t0", None, "a"),
    ("t1", "t0", "a"),
    ("t2", None, "b"),
    ("t3", "t1", "b"),
    ("t4", "t2", "b"),
    ("t5", "t0", "a"),
]


async def threaded_room(api: Api, team: Team, name: str = "room") -> dict[str, Any]:
    room = await api.container(team.project, team.owner, name=name)
    rows = [
        {"external_id": turn, "content": f"turn {turn}", **({"parent_external_id": parent} if parent else {})}
        for turn, parent, _ in TURNS
    ]
    created = await api.client.post(
        f"/api/v1/containers/{room['id']}/items/bulk", json={"items": rows}, headers=team.owner.headers
    )
    assert created.status_code == 201, created.text
    labels = [{"item_external_id": turn, "type": "thread", "data": {"thread_id": thread}} for turn, _, thread in TURNS]
    annotated = await api.client.post(
        f"/api/v1/containers/{room['id']}/annotations/bulk", json={"items": labels}, headers=team.annotator.headers
    )
    assert annotated.status_code == 201, annotated.text
    return room


async def exported(app: Any, client: httpx.AsyncClient, by: Actor, project_id: str, **body: Any) -> bytes:
    response = await client.post(f"/api/v1/projects/{project_id}/exports", json=body, headers=by.headers)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    await run_export(app.state.sessionmaker, uuid.UUID(job_id), settings=app.state.settings)
    download = await client.get(f"/api/v1/jobs/{job_id}/download", headers=by.headers)
    assert download.status_code == 200, download.text
    return download.content


def links(content: bytes) -> list[tuple[int, int]]:
    found = []
    for line in content.decode().splitlines():
        linked, index, dash = line.split(" ")
        assert dash == "-"
        found.append((int(linked), int(index)))
    return found


def components(pairs: list[tuple[int, int]]) -> list[set[int]]:
    """Threads as the corpus's scripts read them: connected components of the links."""
    parent = {index: index for _, index in pairs}

    def find(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    for linked, index in pairs:
        parent[find(index)] = find(linked)
    groups: dict[int, set[int]] = {}
    for index in parent:
        groups.setdefault(find(index), set()).add(index)
    return sorted(groups.values(), key=min)


async def test_reply_structure_from_an_annotators_threads(
    app: Any, client: httpx.AsyncClient, api: Api, team: Team
) -> None:
    room = await threaded_room(api, team)

    content = await exported(
        app,
        client,
        team.owner,
        team.project["id"],
        format="reply_structure",
        container_ids=[room["id"]],
        annotator="annotator",
    )

    # t1 and t5 reply inside their thread (to t0), t4 to t2; t3 replies across threads, so it links to the
    # previous turn of its own thread instead.
    assert links(content) == [(0, 0), (0, 1), (2, 2), (2, 3), (2, 4), (0, 5)]
    assert components(links(content)) == [{0, 1, 5}, {2, 3, 4}]


async def test_reply_structure_from_the_items_parents(
    app: Any, client: httpx.AsyncClient, api: Api, team: Team
) -> None:
    room = await threaded_room(api, team)
    other = await threaded_room(api, team, name="second room")

    content = await exported(
        app, client, team.owner, team.project["id"], format="reply_structure", container_ids=[room["id"], other["id"]]
    )

    one_room = [(0, 0), (0, 1), (2, 2), (1, 3), (2, 4), (0, 5)]
    # Containers come by name ("room", then "second room"); indexes run on, links stay inside each one.
    assert links(content) == one_room + [(linked + 6, index + 6) for linked, index in one_room]


async def test_reply_structure_needs_its_format_for_an_annotator(client: httpx.AsyncClient, team: Team) -> None:
    response = await client.post(
        f"/api/v1/projects/{team.project['id']}/exports",
        json={"format": "csv", "annotator": "annotator"},
        headers=team.owner.headers,
    )
    problem(response, 422, "validation_failed")


async def test_gold_labels_are_their_own_csv_column(app: Any, client: httpx.AsyncClient, api: Api, team: Team) -> None:
    room = await threaded_room(api, team)
    created = await client.post(
        f"/api/v1/containers/{room['id']}/gold",
        json={"type": "thread", "source": "annotator", "annotator": "annotator"},
        headers=team.reviewer.headers,
    )
    assert created.status_code == 201, created.text

    content = await exported(app, client, team.owner, team.project["id"], format="csv", container_ids=[room["id"]])

    rows = list(csv.DictReader(io.StringIO(content.decode())))
    assert [(row["external_id"], row["thread:annotator"], row["thread:gold"]) for row in rows] == [
        (turn, thread, thread) for turn, _, thread in TURNS
    ]
    gold_links = await exported(
        app,
        client,
        team.owner,
        team.project["id"],
        format="reply_structure",
        container_ids=[room["id"]],
        annotator="gold",
    )
    assert components(links(gold_links)) == [{0, 1, 5}, {2, 3, 4}]
