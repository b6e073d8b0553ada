"""Container item schemas are versioned: the old schema is kept under its number, and items name the version
their metadata was last validated against."""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import Api, Team, problem

V1 = {"type": "object", "required": ["speaker"]}
V2 = {"type": "object", "required": ["speaker", "lang"]}


async def test_schema_changes_keep_versions_and_items_name_theirs(
    client: httpx.AsyncClient, api: Api, team: Team
) -> None:
    container = await api.container(team.project, team.owner, item_schema=V1)
    assert container["item_schema_version"] == 1
    url = f"/api/v1/containers/{container['id']}"
    (old,) = await api.items(container, team.owner, 1, metadata={"speaker": "a"})
    assert old["schema_version"] == 1

    renamed = await client.patch(url, json={"name": "renamed", "item_schema": V1}, headers=team.owner.headers)
    assert renamed.json()["item_schema_version"] == 1, "the same schema again is no new version"
    changed = await client.patch(url, json={"item_schema": V2}, headers=team.manager.headers)
    assert changed.json()["item_schema_version"] == 2
    refused = await client.post(
        url + "/items", json={"external_id": "n1", "metadata": {"speaker": "b"}}, headers=team.owner.headers
    )
    problem(refused, 422, "metadata_invalid")
    valid = {"external_id": "n1", "metadata": {"speaker": "b", "lang": "pt"}}
    new = await client.post(url + "/items", json=valid, headers=team.owner.headers)
    assert new.json()["schema_version"] == 2
    item_url = f"/api/v1/items/{old['id']}"
    assert (await client.get(item_url, headers=team.viewer.headers)).json()["schema_version"] == 1
    revalidated = await client.patch(
        item_url, json={"metadata": {"speaker": "a", "lang": "en"}}, headers=team.owner.headers
    )
    assert revalidated.json()["schema_version"] == 2
    problem(await client.patch(item_url, json={"schema_version": 1}, headers=team.owner.headers), 422)

    cleared = await client.patch(url, json={"item_schema": None}, headers=team.owner.headers)
    assert (cleared.json()["item_schema"], cleared.json()["item_schema_version"]) == (None, 3)
    listed = await client.get(url + "/item-schemas", params={"limit": 2}, headers=team.viewer.headers)
    assert listed.status_code == 200, listed.text
    rest = await client.get(
        url + "/item-schemas", params={"cursor": listed.json()["next_cursor"]}, headers=team.viewer.headers
    )
    versions = listed.json()["items"] + rest.json()["items"]
    assert [(v["version"], v["item_schema"]) for v in versions] == [(1, V1), (2, V2), (3, None)]
    assert [v["created_by"] for v in versions] == [team.owner.id, team.manager.id, team.owner.id]


async def test_schema_changes_sent_together_are_both_kept(client: httpx.AsyncClient, api: Api, team: Team) -> None:
    """Two managers change the schema at the same moment: each change gets a number of its own, in the order
    they were written, and the last one is current."""
    container = await api.container(team.project, team.owner, item_schema=V1)
    url = f"/api/v1/containers/{container['id']}"
    schemas = [{"type": "object", "title": f"schema {n}"} for n in range(6)]
    for pair in (schemas[0:2], schemas[2:4], schemas[4:6]):
        answers = await asyncio.gather(
            *(client.patch(url, json={"item_schema": schema}, headers=team.manager.headers) for schema in pair)
        )
        assert [answer.status_code for answer in answers] == [200, 200], [answer.text for answer in answers]
    listed = await client.get(url + "/item-schemas", params={"limit": 100}, headers=team.viewer.headers)
    versions = listed.json()["items"]
    assert [v["version"] for v in versions] == list(range(1, 8))
    assert sorted(v["item_schema"]["title"] for v in versions[1:]) == [schema["title"] for schema in schemas]
    current = (await client.get(url, headers=team.viewer.headers)).json()
    assert (current["item_schema_version"], current["item_schema"]) == (7, versions[-1]["item_schema"])
