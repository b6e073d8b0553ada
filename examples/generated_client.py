"""The API through a client generated from its OpenAPI document (openapi-python-client):

    openapi-python-client generate --url http://127.0.0.1:8000/openapi.json --meta none \
        --config examples/client-config.yaml --output-path generated/annotation_platform_client
    PYTHONPATH=generated API_URL=http://127.0.0.1:8000 python examples/generated_client.py

Register, log in, create a project and a chat room, import room.csv, poll the job, export the project as JSON
Lines, poll that job, download the file. Prints one JSON line: both jobs' states and the exported items.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from annotation_platform_client import AuthenticatedClient, Client
from annotation_platform_client.api.auth import login, register
from annotation_platform_client.api.containers import create_container
from annotation_platform_client.api.exports import create_export, download_export
from annotation_platform_client.api.imports import create_import
from annotation_platform_client.api.jobs import get_job
from annotation_platform_client.api.projects import create_project
from annotation_platform_client.models import (
    BodyCreateImport,
    BodyCreateImportFormat,
    BodyLogin,
    ContainerCreate,
    ExportCreate,
    ExportCreateFormat,
    JobRead,
    Problem,
    ProjectCreate,
    UserRegister,
)
from annotation_platform_client.types import File

API_URL = os.environ.get("API_URL", "http://127.0.0.1:8000")
EMAIL = os.environ.get("API_EMAIL", "ada@example.org")
PASSWORD = os.environ.get("API_PASSWORD", "a perfectly fine passphrase")
ROOM = Path(__file__).with_name("room.csv")


def ok(answer: Any) -> Any:
    """The parsed success model; a problem document (or no answer) becomes an exception."""
    if answer is None or isinstance(answer, Problem):
        raise RuntimeError(f"the API answered {answer}")
    return answer


def wait_for(client: AuthenticatedClient, job: JobRead, timeout: float = 60.0) -> JobRead:
    deadline = time.monotonic() + timeout
    while job.status not in ("succeeded", "failed", "cancelled"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job.id} still {job.status}")
        time.sleep(0.5)
        job = ok(get_job.sync(job.id, client=client))
    return job


def main() -> None:
    anonymous = Client(base_url=API_URL, raise_on_unexpected_status=True)
    registered = register.sync_detailed(client=anonymous, body=UserRegister(email=EMAIL, password=PASSWORD))
    if registered.status_code != 409:  # 409 email_taken: the account exists already
        ok(registered.parsed)
    token = ok(login.sync(client=anonymous, body=BodyLogin(username=EMAIL, password=PASSWORD))).access_token
    client = AuthenticatedClient(base_url=API_URL, token=token, raise_on_unexpected_status=True)

    project = ok(create_project.sync(client=client, body=ProjectCreate(name="Vaccination debates (client)")))
    container = ok(
        create_container.sync(project.id, client=client, body=ContainerCreate(name="Room 10", type_="chat_room"))
    )
    with ROOM.open("rb") as upload:
        body = BodyCreateImport(
            file=File(payload=upload, file_name=ROOM.name, mime_type="text/csv"), format_=BodyCreateImportFormat.CSV
        )
        imported = wait_for(client, ok(create_import.sync(container.id, client=client, body=body)))

    export = ok(create_export.sync(project.id, client=client, body=ExportCreate(format_=ExportCreateFormat.JSONL)))
    exported = wait_for(client, export)
    download = download_export.sync_detailed(exported.id, client=client)
    lines = [json.loads(line) for line in download.content.decode().splitlines() if line]
    print(
        json.dumps(
            {
                "import": imported.status,
                "export": exported.status,
                "media_type": download.headers.get("content-type"),
                "items": [line.get("external_id") for line in lines],
            }
        )
    )


if __name__ == "__main__":
    main()
