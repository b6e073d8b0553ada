"""The `annotation-platform` command as an administrator runs it: a subprocess in the project directory, with
DATA_DIR pointing at a fresh folder and no DATABASE_URL, so everything lands in the embedded SQLite file.

Also the service itself as a process: started, used, stopped with SIGTERM, started again, and everything is
still there.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from annotation_platform.config import ENCRYPTION_KEYS_FILE, SECRET_KEY_FILE, Environment, Settings
from annotation_platform.core.crypto import KeyRing, generate_key_entry
from annotation_platform.main import create_app
from annotation_platform.models import Base
from annotation_platform.observability.logs import ip_pseudonym, ip_pseudonym_key
from tests.conftest import PASSWORD

REPO = Path(__file__).resolve().parents[1]
DB_FILE = "annotation-platform.db"
STRONG_KEY = "a-production-key-that-is-long-and-random-0123456789"
STRONG_KEY_RING = generate_key_entry("test")
COMMAND_TIMEOUT = 60
START_TIMEOUT = 30
API = "/api/v1"


# --- running the command ------------------------------------------------------------------------------------------


def cli_env(data_dir: Path, **overrides: str | None) -> dict[str, str]:
    """The caller's environment without any of the service's settings, plus DATA_DIR.

    A developer's `.env` (read from the working directory) could name a real database or a key: the empty values
    win over it (the environment beats `.env`) and mean "unset" to the service. An override of None removes the
    variable altogether."""
    setting_names = {name.upper() for name in Settings.model_fields}
    env = {key: value for key, value in os.environ.items() if key.upper() not in setting_names}
    env.update(
        DATA_DIR=str(data_dir),
        DATABASE_URL="",
        REDIS_URL="",
        SECRET_KEY="",
        ENCRYPTION_KEYS="",
        ENVIRONMENT="development",
        PYTHONUNBUFFERED="1",
    )
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run_cli(
    data_dir: Path, *args: str, timeout: float = COMMAND_TIMEOUT, **env: str | None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "annotation_platform", *args],
        cwd=REPO,
        env=cli_env(data_dir, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result.stdout


def upgraded(data_dir: Path) -> Path:
    ok(run_cli(data_dir, "db", "upgrade"))
    return data_dir / DB_FILE


@pytest.fixture(scope="module")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One DATA_DIR after `db upgrade`, copied by `data_dir`: saves a migration run per test."""
    template = tmp_path_factory.mktemp("template")
    upgraded(template)
    assert not (template / f"{DB_FILE}-wal").exists(), "the WAL should be checkpointed when the command exits"
    return template


@pytest.fixture
def data_dir(migrated_template: Path, tmp_path: Path) -> Path:
    """A DATA_DIR whose database is migrated and empty, as after `annotation-platform db upgrade`."""
    target = tmp_path / "data"
    target.mkdir()
    shutil.copy(migrated_template / DB_FILE, target / DB_FILE)
    return target


def row_counts(database: Path) -> dict[str, int]:
    counts = {}
    with sqlite3.connect(database) as connection:
        for table in Base.metadata.tables:
            counts[table] = connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    connection.close()
    return counts


def local_settings(data_dir: Path) -> Settings:
    """What the service reads from DATA_DIR alone (development, no DATABASE_URL, no SECRET_KEY, no `.env`)."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment=Environment.development,
        data_dir=data_dir,
        database_url=None,
        redis_url=None,
        secret_key=None,
    )


@asynccontextmanager
async def local_app(data_dir: Path) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """An app instance on DATA_DIR, called in-process."""
    app = create_app(local_settings(data_dir))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield app, client
    finally:
        await app.state.engine.dispose()


@asynccontextmanager
async def local_api(data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with local_app(data_dir) as (_app, client):
        yield client


async def login(client: httpx.AsyncClient, email: str, password: str) -> dict[str, str]:
    response = await client.post(f"{API}/auth/jwt/login", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


# --- db upgrade ---------------------------------------------------------------------------------------------------


def test_db_upgrade_creates_the_database(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"  # does not exist yet

    database = upgraded(data_dir)

    assert database.is_file()
    with sqlite3.connect(database) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    connection.close()
    assert set(Base.metadata.tables) <= tables
    current = ok(run_cli(data_dir, "db", "current"))
    database_line, code_line = current.strip().splitlines()
    assert database_line.split()[-1] == code_line.split()[-1] != "empty", current
    ok(run_cli(data_dir, "db", "upgrade"))  # a second run is a no-op, not an error
    assert row_counts(database) == dict.fromkeys(Base.metadata.tables, 0)


# --- users create -------------------------------------------------------------------------------------------------


async def test_users_create_makes_a_superuser_who_can_log_in(data_dir: Path) -> None:
    result = await asyncio.to_thread(
        run_cli, data_dir, "users", "create", "--email", "Admin@Example.org", "--password", PASSWORD, "--superuser"
    )

    match = re.search(r"\bid ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b", ok(result))
    assert match, result.stdout
    async with local_api(data_dir) as client:
        headers = await login(client, "admin@example.org", PASSWORD)
        me = await client.get(f"{API}/users/me", headers=headers)
        assert me.status_code == 200, me.text
        assert me.json()["id"] == match[1]
        assert me.json()["email"] == "admin@example.org"
        assert (me.json()["is_superuser"], me.json()["is_verified"], me.json()["is_active"]) == (True, True, True)
        assert (await client.get(f"{API}/users", headers=headers)).status_code == 200  # superusers only


async def test_users_create_without_superuser_makes_an_ordinary_account(data_dir: Path) -> None:
    ok(
        await asyncio.to_thread(
            run_cli, data_dir, "users", "create", "--email", "ana@example.org", "--password", PASSWORD
        )
    )

    async with local_api(data_dir) as client:
        headers = await login(client, "ana@example.org", PASSWORD)
        assert (await client.get(f"{API}/users/me", headers=headers)).json()["is_superuser"] is False
        assert (await client.get(f"{API}/users", headers=headers)).status_code == 403


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short1", "at least 10 characters"),
        ("aaaaaaaaaaaaaaaa", "too common or too simple"),
        ("joana.silva-2024", "must not contain your email"),
    ],
    ids=["too-short", "too-simple", "contains-email"],
)
def test_users_create_refuses_a_weak_password(data_dir: Path, password: str, message: str) -> None:
    result = run_cli(data_dir, "users", "create", "--email", "joana.silva@example.org", "--password", password)

    assert result.returncode != 0, result.stdout
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert row_counts(data_dir / DB_FILE)["users"] == 0


def test_users_create_refuses_an_email_already_registered(data_dir: Path) -> None:
    ok(run_cli(data_dir, "users", "create", "--email", "ana@example.org", "--password", PASSWORD))

    result = run_cli(data_dir, "users", "create", "--email", "ANA@example.org", "--password", PASSWORD, "--superuser")

    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "already registered" in result.stderr.lower(), result.stderr
    assert row_counts(data_dir / DB_FILE)["users"] == 1


# --- seed --demo --------------------------------------------------------------------------------------------------

CREDENTIAL_LINE = re.compile(r"^\s+(?P<email>\S+@\S+)\s+(?P<password>\S+)\s+\((?P<name>[\w-]+)\)\s*$", re.MULTILINE)


def seeded(data_dir: Path) -> dict[str, tuple[str, str]]:
    """Runs `seed --demo`; the accounts it printed, by name: (email, password)."""
    output = ok(run_cli(data_dir, "seed", "--demo"))
    return {match["name"]: (match["email"], match["password"]) for match in CREDENTIAL_LINE.finditer(output)}


async def test_seed_demo_creates_a_project_annotated_by_two_users_and_runs_once(data_dir: Path) -> None:
    accounts = await asyncio.to_thread(seeded, data_dir)

    assert {"owner", "ana", "joao"} <= accounts.keys(), accounts
    async with local_api(data_dir) as client:
        owner = await login(client, *accounts["owner"])
        projects = (await client.get(f"{API}/projects", headers=owner)).json()["items"]
        assert len(projects) == 1
        assert projects[0]["my_role"] == "owner"
        containers = (await client.get(f"{API}/projects/{projects[0]['id']}/containers", headers=owner)).json()
        assert len(containers["items"]) == 2
        annotators = {}
        for name in ("ana", "joao"):
            headers = await login(client, *accounts[name])
            annotators[(await client.get(f"{API}/users/me", headers=headers)).json()["id"]] = name
        for container in containers["items"]:
            items = (await client.get(f"{API}/containers/{container['id']}/items?limit=500", headers=owner)).json()
            assert len(items["items"]) == container["item_count"] > 0
            annotations = (
                await client.get(f"{API}/containers/{container['id']}/annotations?limit=500", headers=owner)
            ).json()["items"]
            by_author: dict[str, list[str]] = {}
            for annotation in annotations:
                by_author.setdefault(annotation["created_by"], []).append(annotation["item_id"])
            assert by_author.keys() == annotators.keys()
            for item_ids in by_author.values():
                assert sorted(item_ids) == sorted(item["id"] for item in items["items"])
    before = row_counts(data_dir / DB_FILE)

    again = await asyncio.to_thread(run_cli, data_dir, "seed", "--demo")

    assert "nothing was changed" in ok(again).lower()
    assert not CREDENTIAL_LINE.search(again.stdout)
    assert row_counts(data_dir / DB_FILE) == before


def test_seed_demo_never_ships_known_passwords(data_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(data_dir, other)

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(seeded, [data_dir, other])

    assert first.keys() == second.keys()
    assert len(first) >= 3
    assert {password for _, password in first.values()}.isdisjoint(password for _, password in second.values())


# --- SECRET_KEY ---------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def is_listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize(
    "secret_key",
    [None, "", "too-short-key", "changeme"],
    ids=["unset", "empty", "short", "well-known"],
)
def test_production_refuses_to_serve_without_a_strong_secret_key(data_dir: Path, secret_key: str | None) -> None:
    if secret_key is None and (REPO / ".env").exists():
        pytest.skip("a .env in the project directory may set SECRET_KEY; the 'empty' case covers an unset key")
    port = free_port()

    result = run_cli(
        data_dir, "serve", timeout=START_TIMEOUT, ENVIRONMENT="production", SECRET_KEY=secret_key, PORT=str(port)
    )

    assert result.returncode == 2, f"stdout: {result.stdout}\nstderr: {result.stderr}"
    assert "SECRET_KEY" in result.stderr
    assert "Traceback" not in result.stderr
    assert "Uvicorn running" not in result.stderr + result.stdout
    assert not is_listening(port)
    assert not (data_dir / SECRET_KEY_FILE).exists(), "production must never make up a key"


def test_production_accepts_a_strong_secret_key(tmp_path: Path) -> None:
    """The other side of the refusal above: the same settings with a good key are accepted."""
    result = run_cli(
        tmp_path, "db", "upgrade", ENVIRONMENT="production", SECRET_KEY=STRONG_KEY, ENCRYPTION_KEYS=STRONG_KEY_RING
    )

    ok(result)
    assert (tmp_path / DB_FILE).is_file()
    assert not (tmp_path / SECRET_KEY_FILE).exists()
    assert not (tmp_path / ENCRYPTION_KEYS_FILE).exists()


@pytest.mark.parametrize("key_ring", ["", "k1:c2hvcnQ", "no-colon", "a:" + "A" * 43 + ",a:" + "B" * 43])
def test_production_refuses_a_missing_or_broken_key_ring_without_echoing_it(tmp_path: Path, key_ring: str) -> None:
    result = run_cli(
        tmp_path, "db", "upgrade", ENVIRONMENT="production", SECRET_KEY=STRONG_KEY, ENCRYPTION_KEYS=key_ring
    )

    assert result.returncode == 2, result.stderr
    assert "ENCRYPTION_KEYS" in result.stderr
    assert "Traceback" not in result.stderr
    key_material = key_ring.partition(":")[2][:8]
    assert not key_material or key_material not in result.stderr
    assert not (tmp_path / DB_FILE).exists()


def test_keys_generate_needs_no_settings_and_makes_a_usable_entry(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "keys", "generate", "--id", "2026-11", ENVIRONMENT="production", SECRET_KEY="")

    ok(result)
    entry = result.stdout.strip()
    assert entry.startswith("2026-11:")
    ring = KeyRing.parse(entry)
    assert ring.decrypt_text(ring.encrypt_text("hello")) == "hello"
    assert run_cli(tmp_path, "keys", "generate", "--id", "bad id!").returncode == 2


def test_logs_ip_ref_gives_the_pseudonym_the_logs_use(tmp_path: Path) -> None:
    secret = "s" * 40
    result = run_cli(tmp_path, "logs", "ip-ref", "203.0.113.7", SECRET_KEY=secret)

    assert ok(result).strip() == ip_pseudonym("203.0.113.7", ip_pseudonym_key(secret))
    assert run_cli(tmp_path, "logs", "ip-ref", "not-an-address", SECRET_KEY=secret).returncode == 2


async def test_development_generates_a_secret_key_once_and_reuses_it(data_dir: Path, tmp_path: Path) -> None:
    key_file = data_dir / SECRET_KEY_FILE
    assert not key_file.exists()

    async with local_app(data_dir) as (app, first):
        assert key_file.is_file()
        key = key_file.read_text().strip()
        assert app.state.settings.secret_key == key
        response = await first.post(f"{API}/auth/register", json={"email": "ana@example.org", "password": PASSWORD})
        assert response.status_code == 201, response.text
        headers = await login(first, "ana@example.org", PASSWORD)

    assert len(key) >= 32
    assert key_file.stat().st_mode & 0o077 == 0, "the key file must be readable by its owner only"
    async with local_app(data_dir) as (app, second):
        assert key_file.read_text().strip() == key
        assert app.state.settings.secret_key == key
        me = await second.get(f"{API}/users/me", headers=headers)
        assert me.status_code == 200, me.text
        assert me.json()["email"] == "ana@example.org"
    async with local_app(tmp_path / "elsewhere") as (app, _other):
        assert app.state.settings.secret_key != key, "each DATA_DIR gets its own random key"


# --- the real server, restarted -----------------------------------------------------------------------------------


@contextmanager
def running_server(data_dir: Path, log: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`annotation-platform serve` on a free port; yields the process and its base URL once it answers."""
    port = free_port()
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "annotation_platform", "serve"],
            cwd=REPO,
            # No worker runs beside this server: readiness must not wait for one.
            env=cli_env(data_dir, HOST="127.0.0.1", PORT=str(port), HEALTH_CHECK_WORKERS="false"),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert process.poll() is None, f"the server exited with {process.returncode}:\n{log.read_text()}"
            with suppress(httpx.TransportError):
                if httpx.get(f"{base_url}/health/live", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"the server did not answer in {START_TIMEOUT}s:\n{log.read_text()}"
            time.sleep(0.1)
        yield process, base_url
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def stop(process: subprocess.Popen[bytes], log: Path) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the server did not stop within 20s of SIGTERM:\n{log.read_text()}")
    # uvicorn shuts down gracefully, then exits by the signal it caught (so supervisors see why it stopped)
    assert process.returncode in (0, -signal.SIGTERM), f"exit {process.returncode} after SIGTERM:\n{log.read_text()}"
    assert log.read_text().count("Application shutdown complete") == log.read_text().count("Started server process")


def expect(response: httpx.Response, status: int) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def test_everything_survives_a_restart(data_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    turns = [{"external_id": f"T{index:03d}", "content": f"Olá, turno «{index}»\nlinha 2"} for index in range(25)]

    with running_server(data_dir, log) as (process, url), httpx.Client(base_url=url, timeout=10) as http:
        assert http.get("/health/ready").status_code == 200
        expect(http.post(f"{API}/auth/register", json={"email": "ana@example.org", "password": PASSWORD}), 201)
        login_response = http.post(f"{API}/auth/jwt/login", data={"username": "ana@example.org", "password": PASSWORD})
        headers = {"Authorization": f"Bearer {expect(login_response, 200)['access_token']}"}
        project = expect(http.post(f"{API}/projects", json={"name": "Debates"}, headers=headers), 201)
        container = expect(
            http.post(
                f"{API}/projects/{project['id']}/containers",
                json={"name": "VAC_R10", "type": "chat_room"},
                headers=headers,
            ),
            201,
        )
        items = expect(
            http.post(f"{API}/containers/{container['id']}/items/bulk", json={"items": turns}, headers=headers), 201
        )["items"]
        stop(process, log)
    key = (data_dir / SECRET_KEY_FILE).read_text()

    with running_server(data_dir, log) as (process, url), httpx.Client(base_url=url, timeout=10) as http:
        me = expect(http.get(f"{API}/users/me", headers=headers), 200)
        assert me["email"] == "ana@example.org"
        assert expect(http.get(f"{API}/projects/{project['id']}", headers=headers), 200)["name"] == "Debates"
        containers = expect(http.get(f"{API}/projects/{project['id']}/containers", headers=headers), 200)["items"]
        assert [(c["id"], c["name"], c["item_count"]) for c in containers] == [(container["id"], "VAC_R10", 25)]
        listed = expect(http.get(f"{API}/containers/{container['id']}/items?limit=500", headers=headers), 200)
        assert [(i["id"], i["external_id"], i["content"]) for i in listed["items"]] == [
            (i["id"], i["external_id"], i["content"]) for i in items
        ]
        assert [i["content"] for i in listed["items"]] == [t["content"] for t in turns]
        stop(process, log)
    assert (data_dir / SECRET_KEY_FILE).read_text() == key
