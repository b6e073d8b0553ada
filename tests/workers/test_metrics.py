"""A real worker (`--pool=solo`) serves its own metrics on WORKER_METRICS_PORT: tasks started, their duration
and outcome, by kind; and docker-compose.yml's worker healthcheck, run as compose would, finds it."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.data_import.helpers import ROOM, chat_csv, upload
from tests.workers.test_worker import REPO, WORKER_START_TIMEOUT, Stack, Worker, _team, worker_env
from tests.workers.test_worker import stack as stack


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def start_worker_with_metrics(stack: Stack, port: int) -> Worker:
    log = stack.tmp / "metrics-worker.log"
    command = [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "--pool=solo", "--loglevel=INFO"]
    # The default node name, celery@<host name>, which the compose healthcheck pings.
    command += ["-Q", stack.settings.queue_name, "-n", "celery@%h", "--without-mingle"]
    with log.open("ab") as output:
        process = subprocess.Popen(
            [*command, "--without-gossip"],
            cwd=REPO,
            env={**worker_env(stack.settings), "WORKER_METRICS_PORT": str(port)},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    worker = Worker(process, log)
    stack.workers.append(worker)
    deadline = time.monotonic() + WORKER_START_TIMEOUT
    while not stack.app.state.queue.control.ping(timeout=0.5):
        assert process.poll() is None, worker.output()
        assert time.monotonic() < deadline, worker.output()
    return worker


async def test_a_worker_exports_task_metrics_on_its_port(stack: Stack) -> None:
    port = free_port()
    worker = start_worker_with_metrics(stack, port)
    team = await _team(stack)
    response = await upload(stack.http, team.container, team.owner, chat_csv(ROOM), annotator=team.annotator.username)
    assert response.status_code == 202, response.text
    job = await stack.wait_for(response.json()["id"], team.owner, statuses=("succeeded", "failed"))
    assert job["status"] == "succeeded", job

    samples = scrape(port)
    kind = (("kind", "imports.run"),)
    assert samples[("celery_tasks_started_total", kind)] == 1, worker.output()
    assert samples[("celery_task_duration_seconds_count", (*kind, ("outcome", "success")))] == 1
    assert samples.get(("celery_tasks_failed_total", kind), 0) == 0
    assert samples[("process_resident_memory_bytes", ())] > 0


def test_the_compose_worker_healthcheck_pings_this_worker(stack: Stack) -> None:
    start_worker_with_metrics(stack, free_port())
    kind, command = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["worker"]["healthcheck"][
        "test"
    ]
    assert kind == "CMD-SHELL"
    env = {**worker_env(stack.settings), "HOSTNAME": socket.gethostname()}
    # compose turns $$ into $; the container has `celery` on PATH, here it is this interpreter's.
    script = command.replace("$$", "$").replace("celery -A", f"{sys.executable} -m celery -A")
    ran = subprocess.run(["sh", "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    elsewhere = script.replace("celery@$HOSTNAME", "celery@no-such-host")
    assert subprocess.run(["sh", "-c", elsewhere], cwd=REPO, env=env, timeout=60, check=False).returncode != 0
