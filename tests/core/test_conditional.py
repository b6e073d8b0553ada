"""Conditional reads (ETag, If-None-Match, Cache-Control) and gzip for large answers."""

from __future__ import annotations

import gzip

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from annotation_platform.core.middleware import CompressionMiddleware
from tests.conftest import Api, Team


async def test_every_read_has_an_etag_and_a_repeat_answers_304_without_a_body(
    client: httpx.AsyncClient, team: Team
) -> None:
    container = f"/api/v1/containers/{team.container['id']}"
    for url in (container, f"{container}/items", f"/api/v1/items/{team.items[0]['id']}", "/api/v1/projects"):
        first = await client.get(url, headers=team.viewer.headers)
        assert first.status_code == 200
        etag = first.headers["etag"]
        assert first.headers["cache-control"] == "private, no-cache"

        again = await client.get(url, headers={**team.viewer.headers, "If-None-Match": etag})
        assert again.status_code == 304, url
        assert again.content == b""
        assert again.headers["etag"] == etag

        stale = await client.get(url, headers={**team.viewer.headers, "If-None-Match": 'W/"other"'})
        assert stale.status_code == 200
        assert stale.json() == first.json()

    # A change makes a new ETag, so the old one no longer answers 304.
    items = f"{container}/items"
    etag = (await client.get(items, headers=team.viewer.headers)).headers["etag"]
    await client.patch(f"/api/v1/items/{team.items[0]['id']}", json={"content": "x"}, headers=team.owner.headers)
    changed = await client.get(items, headers={**team.viewer.headers, "If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag


async def test_annotations_keep_their_version_etag(api: Api, team: Team, client: httpx.AsyncClient) -> None:
    annotation = await api.annotate(team.items[0], team.annotator)
    url = f"/api/v1/annotations/{annotation['id']}"
    read = await client.get(url, headers=team.viewer.headers)
    assert read.headers["etag"] == '"1"'
    assert (await client.get(url, headers={**team.viewer.headers, "If-None-Match": '"1"'})).status_code == 304


async def test_personal_data_is_never_stored(client: httpx.AsyncClient, team: Team) -> None:
    for url in ("/api/v1/users/me", "/api/v1/users/me/sessions", "/api/v1/api-keys"):
        response = await client.get(url, headers=team.viewer.headers)
        assert response.status_code == 200
        assert response.headers["cache-control"] == "private, no-store", url
        assert "etag" in response.headers


async def test_large_json_is_gzipped_for_clients_that_accept_it(
    client: httpx.AsyncClient, api: Api, team: Team
) -> None:
    container = await api.container(team.project, team.owner)
    await api.items(container, team.owner, 100, content="a turn of some length " * 5)
    url = f"/api/v1/containers/{container['id']}/items?limit=100"
    raw = await client.get(url, headers={**team.viewer.headers, "Accept-Encoding": "identity"})
    assert "content-encoding" not in raw.headers
    packed = await client.get(url, headers={**team.viewer.headers, "Accept-Encoding": "gzip"})
    assert packed.headers["content-encoding"] == "gzip"
    assert "accept-encoding" in packed.headers["vary"].lower()
    assert int(packed.headers["content-length"]) < len(raw.content) / 3
    assert packed.json() == raw.json()  # httpx decodes it
    small = await client.get("/api/v1/users/me", headers={**team.viewer.headers, "Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers


@pytest.fixture
def streams() -> Starlette:
    async def events(_request: object) -> StreamingResponse:
        async def chunks():  # type: ignore[no-untyped-def]
            for number in range(3):
                yield f"data: {'x' * 2000} {number}\n\n".encode()

        return StreamingResponse(chunks(), media_type="text/event-stream")

    async def download(_request: object) -> StreamingResponse:
        async def chunks():  # type: ignore[no-untyped-def]
            yield b"y" * 3000
            yield b"z" * 3000

        return StreamingResponse(chunks(), media_type="application/json", headers={"Content-Length": "6000"})

    async def whole(_request: object) -> Response:
        return Response(b"w" * 3000, media_type="application/json")

    app = Starlette(routes=[Route("/events", events), Route("/download", download), Route("/whole", whole)])
    return CompressionMiddleware(app, minimum_size=1024)  # type: ignore[return-value]


async def test_streams_and_downloads_pass_uncompressed(streams: Starlette) -> None:
    transport = httpx.ASGITransport(app=streams)
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers={"Accept-Encoding": "gzip"}) as http:
        events = await http.get("/events")
        assert "content-encoding" not in events.headers
        assert events.text.count("data: ") == 3
        download = await http.get("/download")
        assert "content-encoding" not in download.headers
        assert download.headers["content-length"] == "6000" == str(len(download.content))
        async with http.stream("GET", "/whole") as whole:
            assert whole.headers["content-encoding"] == "gzip"
            assert gzip.decompress(b"".join([chunk async for chunk in whole.aiter_raw()])) == b"w" * 3000
