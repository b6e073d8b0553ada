"""Agreement, disagreements and gold sets through the API: a small room built by hand (figures checked by hand),
big containers handed to a job, the cache, permissions, and the real two-annotator room imported from its CSV
files (skipped where ../shared is absent)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from annotation_platform.agreement import metrics
from annotation_platform.agreement.service import run_agreement
from tests.conftest import Actor, Api, Team, make_settings, problem, serve
from tests.data_import.helpers import run, start
from tests.test_chat_files import CHAT_DIR, FILES, TURNS, read_turns

# The worked example of docs/agreement.md: A is the annotator, B the reviewer.
A = ["x", "x", "x", "y", "y", "z"]
B = ["p", "p", "q", "q", "q", "q"]


async def label_room(
    api: Api, team: Team, labels: list[tuple[Actor, list[str | None]]], type_: str = "thread"
) -> dict[str, Any]:
    room = await api.container(team.project, team.owner)
    items = await api.items(room, team.owner, len(labels[0][1]))
    for actor, values in labels:
        rows = [
            {
                "item_id": item["id"],
                "type": type_,
                "data": {"thread_id": value} if type_ == "thread" else {"value": value},
            }
            for item, value in zip(items, values, strict=True)
            if value is not None
        ]
        response = await api.client.post(
            f"/api/v1/containers/{room['id']}/annotations/bulk", json={"items": rows}, headers=actor.headers
        )
        assert response.status_code == 201, response.text
    room["items"] = items
    return room


async def agreement(client: httpx.AsyncClient, room: dict[str, Any], by: Actor, **query: Any) -> httpx.Response:
    return await client.get(
        f"/api/v1/containers/{room['id']}/agreement", params={"type": "thread", **query}, headers=by.headers
    )


async def test_thread_agreement_of_the_worked_example(client: httpx.AsyncClient, api: Api, team: Team) -> None:
    room = await label_room(api, team, [(team.annotator, A), (team.reviewer, B)])

    response = await agreement(client, room, team.viewer)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["kind"] == "clustering"
    assert body["window"] == 3
    assert body["items"] == 6
    assert [(a["username"], a["items"]) for a in body["annotators"]] == [("annotator", 6), ("reviewer", 6)]
    assert body["overall"] is None
    [pair] = body["pairs"]
    assert pair["annotators"] == ["annotator", "reviewer"]
    assert pair["items"] == 6
    expected = metrics.clustering_measures(A, B)
    assert pair["metrics"] == pytest.approx(expected)
    assert pair["metrics"]["one_to_one"] == pytest.approx(4 / 6)
    assert pair["metrics"]["local_agreement"] == pytest.approx(5 / 12)


async def test_items_only_some_annotators_labelled_are_left_out_of_the_pair(
    client: httpx.AsyncClient, api: Api, team: Team
) -> None:
    room = await label_room(
        api, team, [(team.annotator, ["1", "1", "2", None]), (team.reviewer, [None, "5", "6", "6"])]
    )

    body = (await agreement(client, room, team.viewer)).json()

    assert body["items"] == 4
    [pair] = body["pairs"]
    assert pair["items"] == 2  # the two items both labelled
    assert pair["metrics"]["one_to_one"] == 1.0


async def test_disjoint_annotators_get_a_pair_of_nothing(client: httpx.AsyncClient, api: Api, team: Team) -> None:
    room = await label_room(
        api, team, [(team.annotator, ["1", "1", None, None]), (team.reviewer, [None, None, "2", "3"])]
    )

    [pair] = (await agreement(client, room, team.viewer)).json()["pairs"]

    assert pair["items"] == 0
    assert all(value is None for value in pair["metrics"].values())


async def test_categorical_agreement_has_kappas(client: httpx.AsyncClient, api: Api, team: Team) -> None:
    a = ["pos", "pos", "neg", "neg", "neu", "pos"]
    b = ["pos", "neg", "neg", "neg", "neu", "pos"]
    c = ["pos", "pos", "neg", None, "neu", "neu"]
    room = await label_room(api, team, [(team.annotator, a), (team.reviewer, b), (team.manager, c)], type_="sentiment")

    response = await client.get(
        f"/api/v1/containers/{room['id']}/agreement", params={"type": "sentiment"}, headers=team.viewer.headers
    )

    body = response.json()
    assert body["kind"] == "categorical"
    pairs = {tuple(pair["annotators"]): pair for pair in body["pairs"]}
    assert pairs[("annotator", "reviewer")]["metrics"] == pytest.approx(
        {"percent_agreement": 5 / 6, "cohen_kappa": 17 / 23}
    )
    assert pairs[("annotator", "manager")]["items"] == 5 or pairs[("manager", "annotator")]["items"] == 5
    units = [{"a": x, "b": y, **({"c": z} if z is not None else {})} for x, y, z in zip(a, b, c, strict=True)]
    assert body["overall"]["annotators"] == 3
    assert body["overall"]["items"] == 6
    assert body["overall"]["metrics"]["fleiss_kappa"] == pytest.approx(metrics.fleiss_kappa(units))
    assert body["overall"]["metrics"]["krippendorff_alpha"] == pytest.approx(metrics.krippendorff_alpha(units))


async def test_the_report_is_cached_until_an_annotation_of_the_type_changes(
    client: httpx.AsyncClient, api: Api, team: Team, count_queries: Any
) -> None:
    room = await label_room(api, team, [(team.annotator, A), (team.reviewer, B)])
    first = (await agreement(client, room, team.viewer)).json()

    again = (await agreement(client, room, team.viewer)).json()
    assert again["computed_at"] == first["computed_at"]  # served from the cache

    mine = await client.get(
        f"/api/v1/containers/{room['id']}/annotations",
        params={"type": "thread", "created_by": team.annotator.id},
        headers=team.annotator.headers,
    )
    last = mine.json()["items"][-1]
    changed = await client.patch(
        f"/api/v1/annotations/{last['id']}", json={"data": {"thread_id": "y"}}, headers=team.annotator.headers
    )
    assert changed.status_code == 200, changed.text

    fresh = (await agreement(client, room, team.viewer)).json()
    assert fresh["computed_at"] != first["computed_at"]
    expected = metrics.clustering_measures(["x", "x", "x", "y", "y", "y"], B)
    assert fresh["pairs"][0]["metrics"] == pytest.approx(expected)


async def test_a_gold_set_by_majority_leaves_ties_open_and_joins_the_report(
    client: httpx.AsyncClient, api: Api, team: Team
) -> None:
    # Two annotators whose thread names differ: aligned, they agree on items 0, 1, 3, 4 and differ on 2 and 5.
    room = await label_room(api, team, [(team.annotator, A), (team.reviewer, B)])
    url = f"/api/v1/containers/{room['id']}/gold"

    created = await client.post(url, json={"type": "thread", "source": "majority"}, headers=team.reviewer.headers)

    assert created.status_code == 201, created.text
    assert created.json() == {
        "container_id": room["id"],
        "type": "thread",
        "source": "majority",
        "gold_items": 4,
        "open_items": 2,
    }
    open_items = await client.get(f"{url}/open", params={"type": "thread", "context": 1}, headers=team.viewer.headers)
    assert open_items.status_code == 200, open_items.text
    listed = open_items.json()["items"]
    assert [item["sequence"] for item in listed] == [room["items"][2]["sequence"], room["items"][5]["sequence"]]
    assert {label["annotator"]: label["label"] for label in listed[0]["labels"]} == {"annotator": "x", "reviewer": "q"}
    assert [other["external_id"] for other in listed[0]["before"]] == [room["items"][1]["external_id"]]
    assert {label["annotator"] for label in listed[0]["before"][0]["labels"]} == {"annotator", "reviewer", "gold"}

    # Settle one open item as an ordinary annotation marked gold; a second gold for it is refused.
    settle = {"type": "thread", "data": {"thread_id": "x"}, "is_gold": True}
    settled = await client.post(
        f"/api/v1/items/{listed[0]['item_id']}/annotations", json=settle, headers=team.reviewer.headers
    )
    assert settled.status_code == 201, settled.text
    assert settled.json()["is_gold"] is True
    again = await client.post(
        f"/api/v1/items/{listed[0]['item_id']}/annotations", json=settle, headers=team.reviewer.headers
    )
    problem(again, 409, "gold_already_settled")

    status = await client.get(url, params={"type": "thread"}, headers=team.viewer.headers)
    assert status.json()["gold_items"] == 5
    assert status.json()["open_items"] == 1

    report = (await agreement(client, room, team.viewer)).json()
    assert [a["username"] for a in report["annotators"]] == ["annotator", "reviewer", "gold"]
    assert [pair["annotators"] for pair in report["pairs"]] == [
        ["annotator", "reviewer"],
        ["annotator", "gold"],
        ["reviewer", "gold"],
    ]
    assert report["pairs"][1]["items"] == 5

    problem(
        await client.post(url, json={"type": "thread", "source": "majority"}, headers=team.reviewer.headers),
        409,
        "gold_exists",
    )
    deleted = await client.delete(url, params={"type": "thread"}, headers=team.reviewer.headers)
    assert deleted.status_code == 204
    assert (await client.get(url, params={"type": "thread"}, headers=team.viewer.headers)).json()["gold_items"] == 0


async def test_a_gold_set_from_one_annotator_copies_their_labels(
    client: httpx.AsyncClient, api: Api, team: Team
) -> None:
    room = await label_room(api, team, [(team.annotator, A), (team.reviewer, B)])
    url = f"/api/v1/containers/{room['id']}/gold"

    created = await client.post(
        url, json={"type": "thread", "source": "annotator", "annotator": "reviewer"}, headers=team.manager.headers
    )

    assert created.status_code == 201, created.text
    assert created.json()["gold_items"] == 6
    assert created.json()["open_items"] == 0
    [gold_pair] = [
        p
        for p in (await agreement(client, room, team.viewer)).json()["pairs"]
        if p["annotators"][0] == "reviewer" and p["annotators"][1] == "gold"
    ]
    assert gold_pair["metrics"]["one_to_one"] == 1.0
    problem(
        await client.post(
            url, json={"type": "sentiment", "source": "annotator", "annotator": "nobody"}, headers=team.owner.headers
        ),
        422,
        "annotator_has_no_labels",
    )
    problem(await client.post(url, json={"type": "thread", "source": "annotator"}, headers=team.owner.headers), 422)


async def test_only_reviewers_and_above_adjudicate(client: httpx.AsyncClient, api: Api, team: Team) -> None:
    room = await label_room(api, team, [(team.annotator, A), (team.reviewer, B)])
    url = f"/api/v1/containers/{room['id']}/gold"
    body = {"type": "thread", "source": "majority"}

    problem(await client.post(url, json=body, headers=team.annotator.headers), 403, "forbidden")
    problem(await client.post(url, json=body, headers=team.stranger.headers), 404, "not_found")
    problem(await client.delete(url, params={"type": "thread"}, headers=team.viewer.headers), 403, "forbidden")
    gold = {"type": "thread", "data": {"thread_id": "x"}, "is_gold": True}
    problem(
        await client.post(
            f"/api/v1/items/{room['items'][0]['id']}/annotations", json=gold, headers=team.annotator.headers
        ),
        403,
        "forbidden",
    )
    bulk = {"items": [{"item_id": room["items"][0]["id"], **gold}]}
    problem(
        await client.post(
            f"/api/v1/containers/{room['id']}/annotations/bulk", json=bulk, headers=team.annotator.headers
        ),
        403,
        "forbidden",
    )
    problem(await agreement(client, room, team.stranger), 404, "not_found")


async def test_disagreements_are_paged_in_order_with_context(client: httpx.AsyncClient, api: Api, team: Team) -> None:
    room = await label_room(api, team, [(team.annotator, A), (team.reviewer, B)])
    url = f"/api/v1/containers/{room['id']}/disagreements"

    first = await client.get(
        url, params={"type": "thread", "limit": 1, "include_total": "true"}, headers=team.viewer.headers
    )

    assert first.status_code == 200, first.text
    body = first.json()
    assert body["total"] == 2
    [item] = body["items"]
    assert item["external_id"] == room["items"][2]["external_id"]
    labels = {label["annotator"]: label for label in item["labels"]}
    assert labels["annotator"] == {"annotator": "annotator", "label": "x", "aligned": "x"}
    assert labels["reviewer"] == {"annotator": "reviewer", "label": "q", "aligned": "y"}
    assert [other["external_id"] for other in item["before"]] == [i["external_id"] for i in room["items"][:2]]
    assert [other["external_id"] for other in item["after"]] == [i["external_id"] for i in room["items"][3:5]]
    assert 'rel="next"' in first.headers["Link"]

    second = await client.get(
        url, params={"type": "thread", "limit": 1, "cursor": body["next_cursor"]}, headers=team.viewer.headers
    )
    [last] = second.json()["items"]
    assert last["external_id"] == room["items"][5]["external_id"]
    assert last["after"] == []
    assert second.json()["next_cursor"] is None
    problem(
        await client.get(url, params={"type": "thread", "cursor": "garbage"}, headers=team.viewer.headers),
        400,
        "invalid_cursor",
    )


async def test_each_item_of_a_page_gets_its_own_context(client: httpx.AsyncClient, api: Api, team: Team) -> None:
    """Contexts overlap, stop at the container's ends, skip a deleted item and include unlabelled ones; the
    whole page's context is read at once."""
    room = await label_room(
        api, team, [(team.annotator, ["a"] * 6 + [None]), (team.reviewer, ["b"] * 6 + [None])], type_="stance"
    )
    deleted = await client.delete(f"/api/v1/items/{room['items'][2]['id']}", headers=team.owner.headers)
    assert deleted.status_code == 204, deleted.text
    left = [item["external_id"] for index, item in enumerate(room["items"]) if index != 2]
    url = f"/api/v1/containers/{room['id']}/disagreements"

    for context in (0, 2, 10):
        response = await client.get(url, params={"type": "stance", "context": context}, headers=team.viewer.headers)

        assert response.status_code == 200, response.text
        page = response.json()["items"]
        assert [entry["external_id"] for entry in page] == left[:-1]
        for at, entry in enumerate(page):
            assert [other["external_id"] for other in entry["before"]] == left[max(at - context, 0) : at]
            assert [other["external_id"] for other in entry["after"]] == left[at + 1 : at + 1 + context]


async def test_a_big_container_is_computed_by_a_job_and_then_served_from_the_cache(
    database_url: str, tmp_path: Path, engine: AsyncEngine
) -> None:
    from annotation_platform.main import create_app
    from tests.conftest import empty_all_tables

    await empty_all_tables(engine)
    application = create_app(make_settings(database_url, tmp_path, agreement_inline_max_labels=5))
    async with serve(application) as http:
        api = Api(http, application.state.engine)
        owner = await api.user("owner")
        project = await api.project(owner)
        team = Team(owner, owner, owner, owner, owner, owner, project, {}, [])
        room = await label_room(api, team, [(owner, A)])

        queued = await agreement(http, room, owner)
        assert queued.status_code == 202, queued.text
        job = queued.json()
        assert queued.headers["Location"] == f"/api/v1/jobs/{job['id']}"
        assert job["kind"] == "agreement"
        assert (await agreement(http, room, owner)).json()["id"] == job["id"]  # the same job, not another

        await run_agreement(application.state.sessionmaker, uuid.UUID(job["id"]), settings=application.state.settings)

        finished = (await http.get(f"/api/v1/jobs/{job['id']}", headers=owner.headers)).json()
        assert finished["status"] == "succeeded", finished
        assert finished["result"]["items"] == 6
        served = await agreement(http, room, owner)
        assert served.status_code == 200, served.text
        assert served.json()["computed_at"] == finished["result"]["computed_at"]
        project_wide = await http.get(
            f"/api/v1/projects/{project['id']}/agreement", params={"type": "thread"}, headers=owner.headers
        )
        assert project_wide.status_code == 200, project_wide.text
        assert project_wide.json()["containers"] == 1
    await empty_all_tables(engine)


async def test_project_agreement_weights_containers_by_items(client: httpx.AsyncClient, api: Api, team: Team) -> None:
    await label_room(api, team, [(team.annotator, ["1", "1", "2", "2"]), (team.reviewer, ["1", "1", "2", "2"])])
    await label_room(api, team, [(team.annotator, ["1", "1"]), (team.reviewer, ["1", "2"])])

    response = await client.get(
        f"/api/v1/projects/{team.project['id']}/agreement", params={"type": "thread"}, headers=team.viewer.headers
    )

    body = response.json()
    assert body["containers"] == 3  # the team's own (unlabelled) container too
    [pair] = body["pairs"]
    assert pair["items"] == 6
    assert pair["metrics"]["one_to_one"] == pytest.approx((4 * 1.0 + 2 * 0.5) / 6)


async def test_a_project_of_small_containers_is_computed_in_the_request_however_many(
    database_url: str, tmp_path: Path, engine: AsyncEngine
) -> None:
    """Each container under AGREEMENT_INLINE_MAX_LABELS is computed in the request even when together they are
    over it (set-wise, in batches); one container over it sends the whole project to a job."""
    from annotation_platform.main import create_app
    from tests.conftest import empty_all_tables

    await empty_all_tables(engine)
    application = create_app(make_settings(database_url, tmp_path, agreement_inline_max_labels=5))
    async with serve(application) as http:
        api = Api(http, application.state.engine)
        owner, other = await api.user("owner"), await api.user("other")
        project = await api.project(owner)
        await api.add_member(project, owner, other, "annotator")
        team = Team(owner, owner, owner, other, owner, owner, project, {}, [])
        rooms = [await label_room(api, team, [(owner, ["1", "1"]), (other, ["1", value])]) for value in "122"]
        url = f"/api/v1/projects/{project['id']}/agreement"

        first = await http.get(url, params={"type": "thread"}, headers=owner.headers)

        assert first.status_code == 200, first.text
        body = first.json()
        assert body["containers"] == 3
        [pair] = body["pairs"]
        assert pair["items"] == 6
        # Each container's report was stored, and is served from there: the project's is the newest of them.
        stored = [(await agreement(http, room, owner)).json()["computed_at"] for room in rooms]
        assert max(stored) == body["computed_at"]
        assert (await http.get(url, params={"type": "thread"}, headers=owner.headers)).json() == body

        await label_room(api, team, [(owner, ["1", "1", "1"]), (other, ["1", "1", "1"])])
        queued = await http.get(url, params={"type": "thread"}, headers=owner.headers)
        assert queued.status_code == 202, queued.text
    await empty_all_tables(engine)


# --- the real room: two annotators' CSV files, imported ------------------------------------------------------------


def chat_files_present() -> bool:
    return all((CHAT_DIR / name).is_file() for name, _ in FILES.values())


@pytest.mark.skipif(not chat_files_present(), reason="the shared chat files (../shared/data/chat) are absent")
async def test_the_real_room_end_to_end(app: Any, client: httpx.AsyncClient, api: Api, team: Team) -> None:
    room = await api.container(team.project, team.owner, name="VAC_R10 imported")
    for name, (filename, column) in FILES.items():
        annotator = team.annotator if name == "joao" else team.reviewer
        mapping = json.dumps(
            {
                "external_id": "turn_id",
                "content": "turn_text",
                "metadata.user_id": "user_id",
                "parent": "reply_to_turn",
                "annotation.thread": column,
            }
        )
        job = await run(
            app,
            client,
            team.owner,
            await start(
                client, room, team.owner, (CHAT_DIR / filename).read_bytes(), mapping=mapping, annotator=annotator.email
            ),
        )
        assert job["status"] == "succeeded", job

    report = (await agreement(client, room, team.viewer)).json()

    joao = read_turns(CHAT_DIR / FILES["joao"][0], FILES["joao"][1])
    zuil = read_turns(CHAT_DIR / FILES["zuil"][0], FILES["zuil"][1])
    order = [turn.turn_id for turn in joao]
    _, a, b = metrics.paired(
        {t.turn_id: t.thread for t in joao if t.thread}, {t.turn_id: t.thread for t in zuil if t.thread}, order
    )
    [pair] = report["pairs"]
    assert pair["annotators"] == ["annotator", "reviewer"]
    assert pair["items"] == TURNS
    assert pair["metrics"] == pytest.approx(metrics.clustering_measures(a, b))
    assert 0.5 < pair["metrics"]["one_to_one"] < 1

    url = f"/api/v1/containers/{room['id']}/disagreements"
    seen = []
    cursor = None
    while True:
        params = {"type": "thread", "limit": 25, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(url, params=params, headers=team.viewer.headers)).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    mapping_ab = metrics.one_to_one_mapping(b, a)  # reviewer's threads onto the annotator's (the reference)
    differing = [turn for turn, x, y in zip(order, a, b, strict=True) if mapping_ab.get(y) != x]
    assert [item["external_id"] for item in seen] == differing
    assert len(differing) == round(TURNS * (1 - pair["metrics"]["one_to_one"]))

    gold = await client.post(
        f"/api/v1/containers/{room['id']}/gold",
        json={"type": "thread", "source": "majority"},
        headers=team.reviewer.headers,
    )
    assert gold.json()["gold_items"] == TURNS - len(differing)
    assert gold.json()["open_items"] == len(differing)
    async with api.engine.connect() as connection:
        golds = (await connection.execute(text("SELECT count(*) FROM annotations WHERE is_gold"))).scalar_one()
    assert golds == TURNS - len(differing)


async def test_kind_and_window_are_chosen_by_query(client: httpx.AsyncClient, api: Api, team: Team) -> None:
    room = await label_room(api, team, [(team.annotator, A), (team.reviewer, B)])

    local = (await agreement(client, room, team.viewer, window=1)).json()
    categorical = (await agreement(client, room, team.viewer, kind="categorical")).json()

    assert local["window"] == 1
    assert local["pairs"][0]["metrics"]["local_agreement"] == pytest.approx(2 / 5)
    assert categorical["kind"] == "categorical"
    assert categorical["window"] is None
    assert categorical["pairs"][0]["metrics"] == {"percent_agreement": 0.0, "cohen_kappa": 0.0}
    problem(await agreement(client, room, team.viewer, window=0), 422, "validation_failed")
    missing_type = await client.get(f"/api/v1/containers/{room['id']}/agreement", headers=team.viewer.headers)
    problem(missing_type, 422, "validation_failed")
