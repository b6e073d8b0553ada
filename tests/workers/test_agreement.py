"""A real worker process computes the agreement report of a container too big to answer inline (the embedded
default: SQLite and the filesystem broker; also PostgreSQL and Redis when reachable)."""

from __future__ import annotations

from tests.data_import.helpers import ROOM, chat_csv, upload
from tests.workers.test_worker import Stack, _team, stack  # noqa: F401 - `stack` is a fixture


async def test_a_worker_computes_the_agreement_of_a_big_container(stack: Stack) -> None:  # noqa: F811
    stack.start_worker()
    team = await _team(stack)
    for annotator, label in ((team.annotator, "1"), (team.owner, "2")):
        rows = [(user, turn, text, reply, label) for user, turn, text, reply, _ in ROOM]
        response = await upload(stack.http, team.container, team.owner, chat_csv(rows), annotator=annotator.username)
        imported = await stack.wait_for(response.json()["id"], team.owner, statuses=("succeeded", "failed"))
        assert imported["status"] == "succeeded", imported
    # Any container is "big" past this many labels; the API's settings are the ones the endpoint reads.
    stack.app.state.settings = stack.settings.model_copy(update={"agreement_inline_max_labels": 3})
    url = f"/api/v1/containers/{team.container['id']}/agreement"

    queued = await stack.http.get(url, params={"type": "thread"}, headers=team.owner.headers)
    assert queued.status_code == 202, queued.text
    job = await stack.wait_for(queued.json()["id"], team.owner, statuses=("succeeded", "failed"))

    assert job["status"] == "succeeded", job
    [pair] = job["result"]["pairs"]
    assert pair["items"] == 4  # every turn labelled by both: each put all of them in one thread
    assert pair["metrics"]["one_to_one"] == 1.0
    served = await stack.http.get(url, params={"type": "thread"}, headers=team.owner.headers)
    assert served.status_code == 200, served.text
    assert served.json()["pairs"] == job["result"]["pairs"]
