"""`make run` as a newcomer uses it: honcho starts the Procfile (API, worker, beat) on the embedded default
(SQLite in DATA_DIR, the folder broker), an import goes through the worker and shows in the item list, and
Ctrl-C (SIGINT to the whole foreground process group) stops all three."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import httpx

from tests.conftest import PASSWORD
from tests.test_cli import API, REPO, cli_env, free_port

READY_TIMEOUT = 120
JOB_TIMEOUT = 120
# honcho kills what is still running 5 s after the first Ctrl-C; beyond that something ignored it.
STOP_TIMEOUT = 20


def wait_until(check: Callable[[], bool], what: str, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} not within {timeout}s:\n{log.read_text()[-5000:]}"
        time.sleep(0.2)


def children_of(pid: int) -> list[int]:
    """The processes `pid` started (honcho runs each in a session of its own, so they are not in its group)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with suppress(OSError):  # a zombie has exited: only its parent has yet to collect it
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return False


def ready(url: str) -> bool:
    with suppress(httpx.TransportError):
        response = httpx.get(f"{url}/health/ready", timeout=5)
        return response.status_code == 200 and response.json()["checks"]["workers"]["status"] == "ok"
    return False


def test_make_run_serves_api_worker_and_beat_and_ctrl_c_stops_them(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "honcho.log"
    bin_dir = str(Path(sys.executable).parent)
    env = cli_env(tmp_path / "data", HOST="127.0.0.1", PORT=str(port), HEALTH_CHECK_WORKERS="true")
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    with log.open("ab") as output:
        honcho = subprocess.Popen(
            [f"{bin_dir}/honcho", "start", "-f", "Procfile", "-e", os.devnull],
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal's foreground job
        )
    started: list[int] = []
    try:
        wait_until(lambda: honcho.poll() is None and ready(url), "ready with a worker", READY_TIMEOUT, log)
        started = children_of(honcho.pid)
        assert len(started) == 3, f"honcho runs {started}, not web, worker and beat"

        with httpx.Client(base_url=f"{url}{API}", timeout=30) as http:
            assert http.post("/auth/register", json={"email": "ana@example.org", "password": PASSWORD}).is_success
            token = http.post("/auth/jwt/login", data={"username": "ana@example.org", "password": PASSWORD})
            http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
            project = http.post("/projects", json={"name": "Debates"}).json()
            room = http.post(f"/projects/{project['id']}/containers", json={"name": "R1", "type": "chat_room"}).json()
            before = http.get(f"/containers/{room['id']}/items")
            assert before.status_code == 200
            assert before.json()["items"] == []  # cached by the API process; the worker's import must retire it
            csv = "user_id,turn_id,turn_text,reply_to_turn,thread\r\n1,T1,olá,,1\r\n2,T2,oi,T1,1\r\n"
            job = http.post(
                f"/containers/{room['id']}/imports",
                files={"file": ("room.csv", csv.encode(), "text/csv")},
                data={"format": "csv"},
            ).json()
            deadline = time.monotonic() + JOB_TIMEOUT
            while job["status"] in ("queued", "running"):
                assert time.monotonic() < deadline, f"job still {job['status']}:\n{log.read_text()[-5000:]}"
                time.sleep(0.2)
                job = http.get(f"/jobs/{job['id']}").json()
            assert job["status"] == "succeeded", job
            items = http.get(f"/containers/{room['id']}/items").json()["items"]
            assert [item["external_id"] for item in items] == ["T1", "T2"]

        os.killpg(honcho.pid, signal.SIGINT)
        try:
            honcho.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"honcho still runs {STOP_TIMEOUT}s after Ctrl-C:\n{log.read_text()[-5000:]}"
            ) from None
        survivors = [pid for pid in started if alive(pid)]
        assert survivors == [], f"processes of `make run` outlived Ctrl-C:\n{log.read_text()[-5000:]}"
    finally:
        for group in [honcho.pid, *started]:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)
        honcho.wait(timeout=10)
