"""Uploading files to the import endpoint and running the import job in the test process."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from annotation_platform.data_import.service import run_import
from tests.conftest import Actor

CHAT_HEADER = "user_id,turn_id,turn_text,reply_to_turn,thread\r\n"


def chat_csv(rows: list[tuple[str, str, str, str, str]], header: str = CHAT_HEADER) -> bytes:
    def cell(value: str) -> str:
        return '"' + value.replace('"', '""') + '"' if any(c in value for c in ',"\n\r') else value

    return (header + "".join(",".join(cell(value) for value in row) + "\r\n" for row in rows)).encode()


ROOM = [
    ("1280", "VAC_R10_001", "Olá! Sou o moderador. O debate terá início em 3 minutos.", "", "0"),
    ("1969", "VAC_R10_002", "Na minha opinião a vacinação deveria ser um dever.", "", "5"),
    ("2044", "VAC_R10_017", 'Concordo, mas "obrigatório" é forte demais.', "VAC_R10_002", "5"),
    ("2044", "VAC_R10_018", "Resposta a um turno que falta.", "VAC_R10_999", "null"),
]


async def upload(
    client: httpx.AsyncClient,
    container: dict[str, Any],
    by: Actor,
    content: bytes,
    *,
    file_format: str = "csv",
    headers: dict[str, str] | None = None,
    **form: Any,
) -> httpx.Response:
    data = {
        "format": file_format,
        **{key: str(value).lower() if isinstance(value, bool) else value for key, value in form.items()},
    }
    return await client.post(
        f"/api/v1/containers/{container['id']}/imports",
        files={"file": ("room.csv", content, "text/csv")},
        data=data,
        headers={**by.headers, **(headers or {})},
    )


async def start(client: httpx.AsyncClient, container: dict[str, Any], by: Actor, content: bytes, **form: Any) -> str:
    response = await upload(client, container, by, content, **form)
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["Location"] == f"/api/v1/jobs/{job['id']}"
    assert job["status"] == "queued"
    return str(job["id"])


async def run(app: Any, client: httpx.AsyncClient, by: Actor, job_id: str) -> dict[str, Any]:
    """Runs the job as a worker would (same service), then reads it through the API."""
    import uuid

    await run_import(app.state.sessionmaker, uuid.UUID(job_id), settings=app.state.settings)
    response = await client.get(f"/api/v1/jobs/{job_id}", headers=by.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def counts(engine: AsyncEngine, container_id: str) -> tuple[int, int]:
    async with engine.connect() as connection:
        items = (await connection.execute(text("SELECT count(*) FROM items"))).scalar_one()
        annotations = (await connection.execute(text("SELECT count(*) FROM annotations"))).scalar_one()
    return int(items), int(annotations)
