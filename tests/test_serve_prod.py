"""`annotation-platform serve --prod`: several processes under gunicorn; on SIGTERM every request in flight is
finished before the processes exit; X-Forwarded-For is believed only from the configured proxies.

Each test starts the real server on a free port and stops it; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from annotation_platform.config import Settings
from annotation_platform.core.crypto import generate_key_entry
from annotation_platform.observability.logs import ip_pseudonym, ip_pseudonym_key
from tests.conftest import PASSWORD, migrate

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = (REPO / "Dockerfile").read_text()
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
IN_FLIGHT = 16


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def production_server(database_url: str, tmp: Path, **env: str) -> Iterator[Server]:
    port = free_port()
    log = tmp / "server.log"
    names = {name.upper() for name in Settings.model_fields} | {"FORWARDED_ALLOW_IPS"}
    environment = {key: value for key, value in os.environ.items() if key.upper() not in names}
    defaults = {
        "ENVIRONMENT": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "ENCRYPTION_KEYS": generate_key_entry(),
        "DATABASE_URL": database_url,
        "DATA_DIR": str(tmp / "data"),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "HEALTH_CHECK_WORKERS": "false",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics"),
    }
    environment.update({**defaults, **env})
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "annotation_platform", "serve", "--prod"],
            cwd=REPO,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, port, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert process.poll() is None, f"the server exited:\n{server.output()}"
            try:
                if httpx.get(f"{server.url}/health/live", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"the server did not start:\n{server.output()}"
            time.sleep(0.2)
        yield server
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=STOP_TIMEOUT)


def metric(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


async def start_slow_post(
    port: int, path: str, token: str, body: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Sends the headers and half the body: the request is in flight until the other half comes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    writer.write(head.encode() + body[: len(body) // 2])
    await writer.drain()
    return reader, writer


async def finish(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, body: bytes) -> tuple[int, bytes]:
    writer.write(body[len(body) // 2 :])
    await writer.drain()
    response = await asyncio.wait_for(reader.read(), timeout=STOP_TIMEOUT)
    writer.close()
    status_line, _, rest = response.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 "), response
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


async def test_serves_with_several_processes_and_finishes_in_flight_requests_on_sigterm(
    database_url: str, tmp_path: Path
) -> None:
    with production_server(database_url, tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            email = f"prod-{secrets.token_hex(4)}@example.org"
            assert (await http.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})).is_success
            login = await http.post("/api/v1/auth/jwt/login", data={"username": email, "password": PASSWORD})
            token = login.json()["access_token"]
            bodies = [json.dumps({"name": f"in flight {index}"}).encode() for index in range(IN_FLIGHT)]
            connections = [await start_slow_post(server.port, "/api/v1/projects", token, body) for body in bodies]

            # Wait until every one of them is being served (summed over the worker processes).
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                scrape = (await http.get("/metrics")).text
                in_flight = sum(value for _labels, value in metric(scrape, "http_requests_in_flight"))
                if in_flight >= IN_FLIGHT + 1:  # the scrape itself is one
                    break
                assert time.monotonic() < deadline, f"only {in_flight} in flight:\n{server.output()}"
                await asyncio.sleep(0.1)
            pids = {labels["pid"] for labels, _value in metric(scrape, "process_resident_memory_bytes")}
            assert len(pids) >= 2, pids

        server.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(1.0)  # the workers are shutting down now, with the requests half received
        assert server.process.poll() is None, f"the server did not wait for its requests:\n{server.output()}"
        with pytest.raises(ConnectionRefusedError):  # nobody new is let in
            socket.create_connection(("127.0.0.1", server.port), timeout=2).close()

        results = await asyncio.gather(
            *(finish(reader, writer, body) for (reader, writer), body in zip(connections, bodies, strict=True))
        )
        assert [status for status, _body in results] == [201] * IN_FLIGHT, server.output()
        assert sorted(json.loads(body)["name"] for _status, body in results) == sorted(
            json.loads(body)["name"] for body in bodies
        )
        assert server.process.wait(timeout=STOP_TIMEOUT) == 0, server.output()
    assert "Shutting down: Master" in server.output()


@pytest.mark.parametrize(
    ("setting", "trusted", "expected"),
    [
        ("TRUSTED_PROXIES", "127.0.0.1", "203.0.113.9"),
        ("TRUSTED_PROXIES", "10.1.2.3", "127.0.0.1"),
        ("FORWARDED_ALLOW_IPS", "127.0.0.0/8", "203.0.113.9"),
    ],
)
def test_forwarded_for_is_believed_only_from_configured_proxies(
    tmp_path: Path, setting: str, trusted: str, expected: str
) -> None:
    """The access log names the client as a pseudonym; the loopback peer stays as it is."""
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'proxy.db'}"
    migrate(database_url)
    secret_key = secrets.token_urlsafe(48)
    settings = {setting: trusted, "SECRET_KEY": secret_key, "WEB_CONCURRENCY": "1"}
    with production_server(database_url, tmp_path, **settings) as server:
        response = httpx.get(
            f"{server.url}/health/live", headers={"X-Forwarded-For": "203.0.113.9", "X-Request-ID": "proxy-test"}
        )
        assert response.status_code == 200
        # The image's HEALTHCHECK command, run as Docker would, against this server.
        match = re.search(r"^\s+CMD (\[.+\])$", DOCKERFILE, flags=re.MULTILINE)
        assert match, "no HEALTHCHECK CMD in the Dockerfile"
        program, *arguments = json.loads(match[1])
        assert program == "python"
        healthcheck = [sys.executable, *arguments]
        ran = subprocess.run(healthcheck, env={**os.environ, "PORT": str(server.port)}, timeout=30, check=False)
        assert ran.returncode == 0
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=STOP_TIMEOUT)
    access = [
        json.loads(line)
        for line in server.output().splitlines()
        if line.startswith("{") and '"proxy-test"' in line and "annotation_platform.access" in line
    ]
    logged = expected if expected == "127.0.0.1" else ip_pseudonym(expected, ip_pseudonym_key(secret_key))
    assert [line["client"] for line in access] == [logged], server.output()
    assert "203.0.113.9" not in server.output()
