"""Sensitive projects through imports, exports and versions: what goes in comes out the same as for a plain
project, while the database columns, the export file and the snapshot file hold no plaintext."""

from __future__ import annotations

import csv
import io
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import text

from annotation_platform.config import Settings
from annotation_platform.core.crypto import generate_key_entry
from annotation_platform.core.sealed_file import MAGIC
from annotation_platform.data_export.service import run_export
from annotation_platform.main import create_app
from annotation_platform.version.service import run_restore, run_snapshot
from tests.conftest import Api, Team, make_settings, problem, serve
from tests.data_import.helpers import chat_csv, run, start

ROWS = [
    ("1280", "R_001", "Olá! O diagnóstico é confidencial.", "", "0"),
    ("1969", "R_002", '=HYPERLINK("http://evil", "click")', "", "5"),
    ("2044", "R_003", 'She said "no",\nthen left: ação, 東京', "R_002", "5"),
    ("2044", "R_004", "-2 pontos para mim", "R_009", "null"),
]
SECOND = [("1280", "R_001", "", "", "1"), ("1969", "R_002", "", "", "5"), ("2044", "R_003", "", "", "@7")]
AGAIN = [("1280", "R_001", "", "", "3"), ("1969", "R_002", "", "", "5")]


async def _sensitive_project(api: Api, team: Team, *, sensitive: bool = True) -> dict[str, Any]:
    project = await api.project(team.owner, name="Clinic", sensitive=sensitive)
    for member, role in ((team.annotator, "annotator"), (team.reviewer, "reviewer")):
        await api.add_member(project, team.owner, member, role)
    return project


async def _fill(app: Any, client: httpx.AsyncClient, api: Api, team: Team, project: dict[str, Any]) -> None:
    """One room: a first import by the annotator, a second by the reviewer, a third by the annotator again that
    updates one label and leaves one alone (the compare-and-update path on items the container had)."""
    room = await api.container(project, team.owner, name="R")
    for rows, who in ((ROWS, team.annotator), (SECOND, team.reviewer), (AGAIN, team.annotator)):
        job = await start(client, room, team.owner, chat_csv(rows), annotator=who.username)
        done = await run(app, client, team.owner, job)
        assert done["status"] == "succeeded", done
    assert done["result"]["annotations_updated"] == 1
    assert done["result"]["annotations_unchanged"] == 1


async def _export(app: Any, client: httpx.AsyncClient, team: Team, project: dict[str, Any], fmt: str) -> Any:
    response = await client.post(
        f"/api/v1/projects/{project['id']}/exports", json={"format": fmt}, headers=team.owner.headers
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    await run_export(app.state.sessionmaker, uuid.UUID(job_id), settings=app.state.settings)
    job = (await client.get(f"/api/v1/jobs/{job_id}", headers=team.owner.headers)).json()
    assert job["status"] == "succeeded", job
    download = await client.get(f"/api/v1/jobs/{job_id}/download", headers=team.owner.headers)
    assert download.status_code == 200, download.text
    return job, download.content


def _comparable(fmt: str, body: bytes) -> Any:
    """The file without what differs between two projects by construction (container ids)."""
    if fmt == "jsonl":
        lines = [orjson.loads(line) for line in body.splitlines()]
        return [{k: v for k, v in line.items() if k != "container_id"} for line in lines]
    if fmt == "json":
        return [{k: v for k, v in line.items() if k != "container_id"} for line in orjson.loads(body)]
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(body.decode())))
        drop = rows[0].index("container_id") if "container_id" in rows[0] else None
        return [[cell for index, cell in enumerate(row) if index != drop] for row in rows]
    return body


async def test_import_then_export_of_a_sensitive_project_matches_a_plain_one(
    app: Any, client: httpx.AsyncClient, api: Api, team: Team
) -> None:
    sensitive = await _sensitive_project(api, team)
    plain_project = await _sensitive_project(api, team, sensitive=False)
    await _fill(app, client, api, team, sensitive)
    await _fill(app, client, api, team, plain_project)

    async with app.state.engine.connect() as connection:
        rows = (
            await connection.execute(
                text(
                    "SELECT c.project_id, i.content, i.metadata FROM items AS i JOIN containers AS c "
                    "ON c.id = i.container_id"
                )
            )
        ).all()
        data = (await connection.execute(text("SELECT a.data FROM annotations AS a"))).all()
        revisions = (await connection.execute(text("SELECT data FROM annotation_revisions"))).all()
    sealed = [row for row in rows if str(row[0]).replace("-", "") == sensitive["id"].replace("-", "")]
    assert len(sealed) == 4
    assert all(row[1].startswith("enc:v1:") and "enc:v1:" in str(row[2]) for row in sealed)
    assert sum("enc:v1:" in str(row[0]) for row in data) == 6  # 3 by the annotator, 3 by the reviewer
    assert sum("enc:v1:" in str(row[0]) for row in revisions) == 7  # and one update

    for fmt in ("jsonl", "csv", "json", "reply_structure"):
        job, body = await _export(app, client, team, sensitive, fmt)
        _, plain = await _export(app, client, team, plain_project, fmt)
        assert _comparable(fmt, body) == _comparable(fmt, plain), fmt
        assert b"enc:v1:" not in body
        stored = (Path(app.state.settings.data_dir) / "exports" / job["result"]["file"]).read_bytes()
        assert stored.startswith(MAGIC)
        assert "diagnóstico".encode() not in stored
    assert "confidencial" in body.decode() or fmt == "reply_structure"


async def test_export_download_without_its_key_answers_503(
    client: httpx.AsyncClient, api: Api, team: Team, settings: Settings, tmp_path: Path
) -> None:
    settings = make_settings(settings.database_url, tmp_path, encryption_keys=generate_key_entry("a"))
    application = create_app(settings)
    async with serve(application) as http:
        helper = Api(http, api.engine)
        project = await _sensitive_project(helper, team)
        await _fill(application, http, helper, team, project)
        job, _ = await _export(application, http, team, project, "jsonl")
    other = make_settings(settings.database_url, tmp_path, encryption_keys=generate_key_entry("b"))
    without = create_app(other)
    async with serve(without) as http:
        response = await http.get(f"/api/v1/jobs/{job['id']}/download", headers=team.owner.headers)
        problem(response, 503, "encryption_key_unavailable")
        # A new export (and snapshot) of the project fails cleanly, saying why, and keeps no file.
        for url, body, run_job in (
            (f"/api/v1/projects/{project['id']}/exports", {"format": "csv"}, run_export),
            (f"/api/v1/projects/{project['id']}/versions", {"tag": "v9"}, run_snapshot),
        ):
            started = await http.post(url, json=body, headers=team.owner.headers)
            assert started.status_code == 202, started.text
            await run_job(without.state.sessionmaker, uuid.UUID(started.json()["id"]), settings=other)
            failed = (await http.get(f"/api/v1/jobs/{started.json()['id']}", headers=team.owner.headers)).json()
            assert failed["status"] == "failed", failed
            assert "no longer configured" in failed["error_message"]


async def test_snapshot_restore_diff_of_a_sensitive_project(
    app: Any, client: httpx.AsyncClient, api: Api, team: Team
) -> None:
    project = await _sensitive_project(api, team)
    await _fill(app, client, api, team, project)
    versions = f"/api/v1/projects/{project['id']}/versions"

    async def snapshot(url: str, tag: str) -> str:
        response = await client.post(url, json={"tag": tag}, headers=team.owner.headers)
        assert response.status_code == 202, response.text
        await run_snapshot(app.state.sessionmaker, uuid.UUID(response.json()["id"]), settings=app.state.settings)
        job = (await client.get(f"/api/v1/jobs/{response.json()['id']}", headers=team.owner.headers)).json()
        assert job["status"] == "succeeded", job
        return str(job["result"]["version_id"])

    first = await snapshot(versions, "v1")
    files = list((Path(app.state.settings.data_dir) / "exports").glob("*"))
    snapshots = [path for path in files if path.read_bytes().startswith(MAGIC)]
    assert snapshots, files
    assert all("diagnóstico".encode() not in path.read_bytes() for path in snapshots)

    restore = await client.post(f"{versions}/{first}/restore", json={}, headers=team.owner.headers)
    assert restore.status_code == 202, restore.text
    await run_restore(app.state.sessionmaker, uuid.UUID(restore.json()["id"]), settings=app.state.settings)
    job = (await client.get(f"/api/v1/jobs/{restore.json()['id']}", headers=team.owner.headers)).json()
    assert job["status"] == "succeeded", job
    copy_id = job["result"]["project_id"]
    copy = (await client.get(f"/api/v1/projects/{copy_id}", headers=team.owner.headers)).json()
    assert copy["sensitive"] is True
    (room,) = (await client.get(f"/api/v1/projects/{copy_id}/containers", headers=team.owner.headers)).json()["items"]
    items = (await client.get(f"/api/v1/containers/{room['id']}/items", headers=team.owner.headers)).json()["items"]
    assert items[0]["content"] == ROWS[0][2]
    async with app.state.engine.connect() as connection:
        query = (
            "SELECT i.content FROM items AS i JOIN containers AS c ON c.id = i.container_id "
            "JOIN projects AS p ON p.id = c.project_id WHERE p.sensitive"
        )
        contents = (await connection.execute(text(query))).scalars().all()
    assert len(contents) == 8
    assert all(content.startswith("enc:v1:") for content in contents)

    copied = await snapshot(f"/api/v1/projects/{copy_id}/versions", "copied")
    diff = await client.get(
        f"/api/v1/projects/{copy_id}/versions/{copied}/diff",
        params={"against": first, "include_total": "true"},
        headers=team.owner.headers,
    )
    assert diff.status_code == 200, diff.text
    assert diff.json()["total"] == 0

    edited = await client.patch(
        f"/api/v1/items/{items[0]['id']}", json={"content": "changed"}, headers=team.owner.headers
    )
    assert edited.status_code == 200, edited.text
    changed = await snapshot(f"/api/v1/projects/{copy_id}/versions", "changed")
    diff = await client.get(
        f"/api/v1/projects/{copy_id}/versions/{changed}/diff", params={"against": first}, headers=team.owner.headers
    )
    assert [(e["kind"], e["change"], e["fields"]) for e in diff.json()["items"]] == [("item", "changed", ["content"])]
