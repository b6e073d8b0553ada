"""Schemathesis over every operation of the document, against the served app: no answer is a 500, and every
answer has a documented status, content type, headers and body schema.

Bounded for CI: the document's examples and a few generated cases an operation (positive and negative), no
deadline, a fixed seed. GETs of a path with ids use real resources of the caller, so successful answers are
checked too."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from annotation_platform.core.openapi_changes import live_document
from tests.served.conftest import Served
from tests.workers.test_worker import JOB_TIMEOUT, Worker

MAX_EXAMPLES = 5
ENDING = ("queued", "running")
REQUEST_TIMEOUT = 30
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
CHAT_CSV = b"user_id,turn_id,turn_text,reply_to_turn,thread\r\n1280,T1,hello,,0\r\n1969,T2,hi,T1,0\r\n"

# The document's own examples, then MAX_EXAMPLES generated cases an operation. The coverage phase (every boundary
# value of every parameter) would multiply the requests by ten or more: too slow for every CI run.
CONFIG = SchemathesisConfig.from_dict({"phases": {"coverage": {"enabled": False}}})
schema = schemathesis.openapi.from_dict(live_document(), config=CONFIG)


class Caller:
    """A user with a project, a container, an item, an annotation, a job and an API key of their own."""

    def __init__(self, served: Served) -> None:
        self.served = served
        self.http = httpx.Client(base_url=served.url, timeout=30)
        self.ids: dict[str, str] = {}
        self.login()

    def login(self) -> None:
        _email, token = self.served.register(self.http)
        self.headers = {"Authorization": f"Bearer {token}"}
        me = self.http.get("/api/v1/users/me", headers=self.headers).json()
        project = self.post("/api/v1/projects", {"name": "Schemathesis"})
        container = self.post(f"/api/v1/projects/{project['id']}/containers", {"name": "Room", "type": "chat_room"})
        item = self.post(f"/api/v1/containers/{container['id']}/items", {"external_id": "T0", "content": "hello"})
        annotation = self.post(f"/api/v1/items/{item['id']}/annotations", {"type": "thread", "data": {"label": 1}})
        key = self.post("/api/v1/api-keys", {"name": "schemathesis", "scopes": ["read"]})
        job = self.http.post(
            f"/api/v1/containers/{container['id']}/imports",
            files={"file": ("room.csv", CHAT_CSV, "text/csv")},
            data={"format": "csv"},
            headers=self.headers,
        )
        assert job.status_code == 202, job.text
        self.wait_for(job.json()["id"])
        self.ids = {
            "user_id": me["id"],
            "project_id": project["id"],
            "container_id": container["id"],
            "item_id": item["id"],
            "annotation_id": annotation["id"],
            "key_id": key["id"],
            "job_id": job.json()["id"],
        }

    def wait_for(self, job_id: str) -> None:
        """An ended job: its event stream ends at once instead of staying open."""
        deadline = time.monotonic() + JOB_TIMEOUT
        while (job := self.http.get(f"/api/v1/jobs/{job_id}", headers=self.headers).json())["status"] in ENDING:
            assert time.monotonic() < deadline, f"the import job has not ended in {JOB_TIMEOUT}s: {job}"
            time.sleep(0.1)
        assert job["status"] == "succeeded", job

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post(path, json=body, headers=self.headers)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def fresh(self) -> dict[str, str]:
        """The caller's headers; a case may have logged them out (or deleted their project): start again."""
        if self.http.get(f"/api/v1/projects/{self.ids['project_id']}", headers=self.headers).status_code != 200:
            self.login()
        return self.headers


@pytest.fixture(scope="module")
def caller(served: Served, served_worker: Worker) -> Iterator[Caller]:
    found = Caller(served)
    yield found
    found.http.close()


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented(case: Any, served: Served, caller: Caller) -> None:
    headers = caller.fresh()
    if case.method in ("GET", "HEAD") and case.path_parameters:
        for name in case.path_parameters:
            if name in caller.ids:
                case.path_parameters[name] = caller.ids[name]
    case.call_and_validate(base_url=served.url, headers=headers, checks=CHECKS, timeout=REQUEST_TIMEOUT)
