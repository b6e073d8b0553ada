"""`ApiRouter`: a router that rejects at once a request none of its paths can serve still serves its own."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from annotation_platform.core.routing import ApiRouter


def _app() -> tuple[FastAPI, ApiRouter]:
    projects, items = ApiRouter(prefix="/projects"), ApiRouter()

    @projects.get("/{project_id}")
    async def read_project(project_id: str) -> dict[str, str]:
        return {"project": project_id}

    @items.get("/containers/{container_id}/items")
    async def list_items(container_id: str) -> dict[str, str]:
        return {"items_of": container_id}

    @items.delete("/items/{item_id}")
    async def delete_item(item_id: str) -> dict[str, str]:
        return {"deleted": item_id}

    app = FastAPI()
    app.include_router(projects, prefix="/api/v1")
    app.include_router(items, prefix="/api/v1")
    return app, items


async def test_each_router_serves_its_paths_under_the_prefix_it_is_included_with() -> None:
    app, _ = _app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        assert (await client.get("/api/v1/projects/p1")).json() == {"project": "p1"}
        assert (await client.get("/api/v1/containers/c1/items")).json() == {"items_of": "c1"}
        assert (await client.delete("/api/v1/items/i1")).json() == {"deleted": "i1"}
        assert (await client.get("/api/v1/containers/c1/items/extra")).status_code == 404
        assert (await client.get("/projects/p1")).status_code == 404  # not without the prefix
        wrong_method = await client.get("/api/v1/items/i1")
        assert wrong_method.status_code == 405
        assert wrong_method.headers["allow"] == "DELETE"


async def test_a_route_added_after_the_first_request_is_served() -> None:
    app, items = _app()

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        assert (await client.get("/api/v1/items/i1/history")).status_code == 404

        @items.get("/items/{item_id}/history")
        async def item_history(item_id: str) -> dict[str, str]:
            return {"history_of": item_id}

        assert (await client.get("/api/v1/items/i1/history")).json() == {"history_of": "i1"}
