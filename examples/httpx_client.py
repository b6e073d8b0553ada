"""The API with plain httpx: register, log in, create a project and a chat room, import room.csv, wait for the
job, then read every item page by page (following `next_cursor`).

    API_URL=http://127.0.0.1:8000 API_EMAIL=ada@example.org API_PASSWORD='...' python examples/httpx_client.py

Prints one JSON line: the job's final state and the items' external ids.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import httpx

API_URL = os.environ.get("API_URL", "http://127.0.0.1:8000")
EMAIL = os.environ.get("API_EMAIL", "ada@example.org")
PASSWORD = os.environ.get("API_PASSWORD", "a perfectly fine passphrase")
ROOM = Path(__file__).with_name("room.csv")


def check(response: httpx.Response) -> Any:
    """The JSON body, or the problem document's code and detail as an exception."""
    if response.is_error:
        problem = response.json()  # application/problem+json: a stable `code`, see /errors
        raise RuntimeError(f"{response.status_code} {problem['code']}: {problem['detail']}")
    return response.json() if response.content else None


def log_in(http: httpx.Client) -> None:
    registered = http.post("/auth/register", json={"email": EMAIL, "password": PASSWORD})
    if registered.status_code != 409:  # 409 email_taken: the account exists already
        check(registered)
    token = check(http.post("/auth/jwt/login", data={"username": EMAIL, "password": PASSWORD}))["access_token"]
    http.headers["Authorization"] = f"Bearer {token}"


def wait_for(http: httpx.Client, job_url: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = check(http.get(job_url))
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job still {job['status']} after {timeout}s")
        time.sleep(0.5)


def all_items(http: httpx.Client, container_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        page = check(http.get(f"/containers/{container_id}/items", params=params))
        items += page["items"]
        if page["next_cursor"] is None:
            return items
        params["cursor"] = page["next_cursor"]


def main() -> None:
    with httpx.Client(base_url=f"{API_URL}/api/v1", timeout=30) as http:
        log_in(http)
        project = check(http.post("/projects", json={"name": "Vaccination debates (httpx)"}))
        container = check(
            http.post(f"/projects/{project['id']}/containers", json={"name": "Room 10", "type": "chat_room"})
        )
        with ROOM.open("rb") as upload:
            accepted = http.post(
                f"/containers/{container['id']}/imports",
                files={"file": (ROOM.name, upload, "text/csv")},
                data={"format": "csv"},
            )
        check(accepted)
        job = wait_for(http, accepted.headers["Location"].removeprefix("/api/v1"))
        items = all_items(http, container["id"])
        print(json.dumps({"job": job["status"], "result": job["result"], "items": [i["external_id"] for i in items]}))


if __name__ == "__main__":
    main()
