"""Key rotation for real: data of a sensitive project (columns, history, an export file, a snapshot) and a webhook
secret encrypted with one key; a new key goes first in ENCRYPTION_KEYS, `annotation-platform keys rotate` queues
the task, a worker runs it, `keys status` shows everything under the new key, and the old key can be removed."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from annotation_platform.config import Settings
from annotation_platform.core.crypto import generate_key_entry
from annotation_platform.main import create_app
from tests.conftest import serve
from tests.data_import.helpers import ROOM, chat_csv, upload
from tests.test_cli import run_cli
from tests.workers.test_worker import Stack, _team, stack, worker_env  # noqa: F401 - `stack` is a fixture

ROTATION_TIMEOUT = 60.0
PUBLIC_URL = "https://93.184.216.34/hooks/annotations"


def _status(running: Stack, settings: Settings | None = None) -> tuple[int, dict[str, Any]]:
    """`annotation-platform keys status --json` with the stack's settings (or these)."""
    result = run_cli(running.tmp, "keys", "status", "--json", **worker_env(settings or running.settings))
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def _used(found: dict[str, Any]) -> set[str]:
    return {key_id for counts in found["columns"].values() for key_id in counts} | set(found["files"])


async def _job(running: Stack, team: Any, url: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await running.http.post(url, json=body, headers=team.owner.headers)
    assert response.status_code == 202, response.text
    job = await running.wait_for(response.json()["id"], team.owner, statuses=("succeeded", "failed"))
    assert job["status"] == "succeeded", job
    return job


async def test_rotate_moves_every_value_and_file_to_the_new_key(stack: Stack, tmp_path: Path) -> None:  # noqa: F811
    old, new = generate_key_entry("old"), generate_key_entry("new")
    stack.settings = stack.settings.model_copy(update={"encryption_keys": old})
    # The served app was built with the test settings' ring: one made with `old` writes the data.
    first = create_app(stack.settings)
    async with serve(first) as http:
        stack.http = http
        stack.start_worker()
        team = await _team(stack)
        sensitive = (
            await http.post("/api/v1/projects", json={"name": "Clinic", "sensitive": True}, headers=team.owner.headers)
        ).json()
        await stack.api.add_member(sensitive, team.owner, team.annotator, "annotator")
        room = (
            await http.post(
                f"/api/v1/projects/{sensitive['id']}/containers",
                json={"name": "R", "type": "chat_room"},
                headers=team.owner.headers,
            )
        ).json()
        response = await upload(http, room, team.owner, chat_csv(ROOM), annotator=team.annotator.username)
        assert response.status_code == 202, response.text
        imported = await stack.wait_for(response.json()["id"], team.owner, statuses=("succeeded", "failed"))
        assert imported["status"] == "succeeded", imported
        items = (await http.get(f"/api/v1/containers/{room['id']}/items", headers=team.owner.headers)).json()["items"]
        export = await _job(stack, team, f"/api/v1/projects/{sensitive['id']}/exports", {"format": "jsonl"})
        before = (await http.get(f"/api/v1/jobs/{export['id']}/download", headers=team.owner.headers)).content
        version = await _job(stack, team, f"/api/v1/projects/{sensitive['id']}/versions", {"tag": "v1"})
        hook = await http.post(
            f"/api/v1/projects/{sensitive['id']}/webhooks",
            json={"url": PUBLIC_URL, "event_types": ["item.created"]},
            headers=team.owner.headers,
        )
        assert hook.status_code == 201, hook.text

    # The new key goes first; the old one stays until the rotation is done.
    stack.settings = stack.settings.model_copy(update={"encryption_keys": f"{new},{old}"})
    code, found = _status(stack)
    assert code == 1
    assert found["current"] == "new"
    assert found["columns"]["items.content"] == {"old": 4}
    assert found["columns"]["annotations.data"] == {"old": 3}
    assert found["columns"]["annotation_revisions.data"] == {"old": 3}
    assert found["columns"]["webhooks.secret"] == {"old": 1}
    assert found["files"] == {"old": 2}

    for worker in list(stack.workers):
        worker.process.terminate()
        worker.process.wait(timeout=10)
    stack.start_worker()
    rotate = run_cli(stack.tmp, "keys", "rotate", **worker_env(stack.settings))
    assert rotate.returncode == 0, rotate.stderr
    assert "keys.rotate" in rotate.stdout
    deadline = time.monotonic() + ROTATION_TIMEOUT
    while True:
        code, found = _status(stack)
        if code == 0:
            break
        logs = "\n".join(worker.output() for worker in stack.workers)
        assert time.monotonic() < deadline, f"still {found} after {ROTATION_TIMEOUT}s\n{logs}"
        await asyncio.sleep(0.5)
    assert _used(found) == {"new"}
    assert found["columns"]["items.metadata"] == {"new": 4}
    assert found["files"] == {"new": 2}

    # Running it again changes nothing and is harmless.
    assert run_cli(stack.tmp, "keys", "rotate", **worker_env(stack.settings)).returncode == 0

    # The old key is dropped: everything still reads.
    only_new = stack.settings.model_copy(update={"encryption_keys": new})
    async with serve(create_app(only_new)) as http:
        item = await http.get(f"/api/v1/items/{items[1]['id']}", headers=team.owner.headers)
        assert item.status_code == 200, item.text
        assert item.json()["content"] == ROOM[1][2]
        listed = await http.get(f"/api/v1/containers/{room['id']}/annotations", headers=team.owner.headers)
        assert listed.status_code == 200, listed.text
        history = await http.get(
            f"/api/v1/annotations/{listed.json()['items'][0]['id']}/history", headers=team.owner.headers
        )
        assert history.status_code == 200, history.text
        again = await http.get(f"/api/v1/jobs/{export['id']}/download", headers=team.owner.headers)
        assert again.status_code == 200, again.text
        assert again.content == before
        version_id = version["result"]["version_id"]
        diff = await http.get(
            f"/api/v1/projects/{sensitive['id']}/versions/{version_id}/diff",
            params={"against": version_id, "include_total": "true"},
            headers=team.owner.headers,
        )
        assert diff.status_code == 200, diff.text
        assert diff.json()["total"] == 0
    code, found = _status(stack, only_new)
    assert code == 0
    assert _used(found) == {"new"}
