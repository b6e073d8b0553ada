"""The integration examples in examples/, run against the served app and a worker: curl, plain httpx, the
async batch-import script, and a Python client generated with openapi-python-client from the live document
(the end-to-end scenario: register, log in, project, chat room, import, poll, export, download)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import PASSWORD
from tests.served.conftest import Served
from tests.workers.test_worker import Worker

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
ROOM_IDS = ["VAC_R10_001", "VAC_R10_002", "VAC_R10_017"]
RUN_TIMEOUT = 180


def run(command: list[str], served: Served, **env: str) -> dict[str, Any]:
    """Runs an example as a user would; returns the JSON line it printed last."""
    environment = {
        **os.environ,
        "API_URL": served.url,
        "API_EMAIL": f"example-{secrets.token_hex(4)}@example.org",
        "API_PASSWORD": PASSWORD,
        **env,
    }
    ran = subprocess.run(command, env=environment, capture_output=True, timeout=RUN_TIMEOUT, check=False, cwd=REPO)
    output = ran.stdout.decode()
    assert ran.returncode == 0, f"{command} exited {ran.returncode}:\n{output}\n{ran.stderr.decode()[-3000:]}"
    return dict(json.loads(output.strip().splitlines()[-1]))


def test_the_curl_example(served: Served, served_worker: Worker) -> None:
    if not (shutil.which("curl") and shutil.which("jq")):
        pytest.skip("the curl example needs curl and jq")
    assert run(["bash", str(EXAMPLES / "curl.sh")], served) == {"items": ROOM_IDS, "next_cursor": None}


def test_the_httpx_example(served: Served, served_worker: Worker) -> None:
    summary = run([sys.executable, str(EXAMPLES / "httpx_client.py")], served)
    assert summary["job"] == "succeeded"
    assert summary["result"]["items_created"] == len(ROOM_IDS)
    assert summary["items"] == ROOM_IDS


def test_the_batch_import_example_waits_and_is_safe_to_rerun(served: Served, served_worker: Worker) -> None:
    with httpx.Client(base_url=served.url, timeout=30) as http:
        _email, token = served.register(http)
        headers = {"Authorization": f"Bearer {token}"}
        project = http.post("/api/v1/projects", json={"name": "Batch"}, headers=headers).json()
        container = http.post(
            f"/api/v1/projects/{project['id']}/containers", json={"name": "Room", "type": "chat_room"}, headers=headers
        ).json()
    command = [sys.executable, str(EXAMPLES / "batch_import.py"), container["id"], str(EXAMPLES / "room.csv")]
    first = run(command, served, API_TOKEN=token)
    assert (first["file"], first["status"], first["result"]["items_created"]) == ("room.csv", "succeeded", 3)
    again = run(command, served, API_TOKEN=token)
    assert again["job"] == first["job"]  # the Idempotency-Key gave the same job back: nothing imported twice


def test_a_generated_client_runs_the_whole_scenario(served: Served, served_worker: Worker, tmp_path: Path) -> None:
    document = tmp_path / "openapi.json"
    document.write_text(httpx.get(f"{served.url}/openapi.json", timeout=30).text)
    package = tmp_path / "generated" / "annotation_platform_client"
    generator = Path(sys.executable).with_name("openapi-python-client")
    generated = subprocess.run(
        [
            *(str(generator), "generate", "--path", str(document), "--meta", "none"),
            *("--config", str(EXAMPLES / "client-config.yaml"), "--output-path", str(package)),
        ],
        capture_output=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    log = generated.stdout.decode() + generated.stderr.decode()
    assert generated.returncode == 0, log
    # Every schema became code: the generator names anything it had to leave out.
    assert "Warning" not in log, log
    compiled = subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(package)], capture_output=True, timeout=RUN_TIMEOUT, check=False
    )
    assert compiled.returncode == 0, compiled.stdout.decode()

    summary = run([sys.executable, str(EXAMPLES / "generated_client.py")], served, PYTHONPATH=str(package.parent))
    assert summary["import"] == "succeeded"
    assert summary["export"] == "succeeded"
    assert summary["media_type"].startswith("application/x-ndjson") or "json" in summary["media_type"]
    assert summary["items"] == ROOM_IDS
