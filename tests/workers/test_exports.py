"""A real worker process runs an export sent through the API, and the file is downloaded (the embedded default:
SQLite and the filesystem broker; also PostgreSQL and Redis when reachable)."""

from __future__ import annotations

import csv
import io

import orjson

from tests.data_import.helpers import ROOM, chat_csv, upload
from tests.workers.test_worker import Stack, _team, stack  # noqa: F401 - `stack` is a fixture


async def test_a_worker_runs_an_export_and_the_file_downloads(stack: Stack) -> None:  # noqa: F811
    stack.start_worker()
    team = await _team(stack)
    response = await upload(stack.http, team.container, team.owner, chat_csv(ROOM), annotator=team.annotator.username)
    imported = await stack.wait_for(response.json()["id"], team.owner, statuses=("succeeded", "failed"))
    assert imported["status"] == "succeeded", imported

    for file_format in ("jsonl", "csv"):
        response = await stack.http.post(
            f"/api/v1/projects/{team.project['id']}/exports", json={"format": file_format}, headers=team.owner.headers
        )
        assert response.status_code == 202, response.text
        job = await stack.wait_for(response.json()["id"], team.owner, statuses=("succeeded", "failed"))
        assert job["status"] == "succeeded", job
        assert job["result"]["items"] == 4
        assert job["result"]["annotations"] == 3
        download = await stack.http.get(f"/api/v1/jobs/{job['id']}/download", headers=team.owner.headers)
        assert download.status_code == 200, download.text
        if file_format == "jsonl":
            lines = [orjson.loads(line) for line in download.content.splitlines()]
            assert [line["external_id"] for line in lines] == [row[1] for row in ROOM]
            assert lines[2]["content"] == ROOM[2][2]
            assert lines[2]["parent"] == "VAC_R10_002"
        else:
            rows = list(csv.reader(io.StringIO(download.content.decode())))
            assert rows[0][-1] == f"thread:{team.annotator.username}"
            assert [row[-1] for row in rows[1:]] == ["0", "5", "5", ""]
