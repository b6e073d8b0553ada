"""Rate limits (per key, per user, per address on the password routes), login lockout and the global IP
allow-list, each on an app built for the test with its own settings."""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from annotation_platform.main import create_app
from tests.conftest import PASSWORD, make_settings, problem, serve

TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/4")
ME = "/api/v1/users/me"


def limited_app(database_url: str, tmp_path: Path, **overrides: Any) -> Any:
    values: dict[str, Any] = {"rate_limit_enabled": True, "rate_limit_auth": "100/minute", **overrides}
    return create_app(make_settings(database_url, tmp_path, **values))


async def account(http: httpx.AsyncClient, name: str) -> dict[str, str]:
    email = f"{name}@example.org"
    registered = await http.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert registered.status_code == 201, registered.text
    login = await http.post("/api/v1/auth/jwt/login", data={"username": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def quota(response: httpx.Response) -> tuple[int, int]:
    reset = int(response.headers["X-RateLimit-Reset"])
    assert reset > 1_700_000_000  # epoch seconds
    return int(response.headers["X-RateLimit-Limit"]), int(response.headers["X-RateLimit-Remaining"])


async def test_each_user_and_each_key_has_its_own_counter(
    client: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    async with serve(limited_app(database_url, tmp_path, rate_limit_default="3/minute")) as http:
        ana = await account(http, "ana")
        bea = await account(http, "bea")
        created = await http.post("/api/v1/api-keys", json={"name": "k", "scopes": ["read"]}, headers=ana)
        assert created.status_code == 201, created.text  # ana's 1st counted request
        seen = [quota(await http.get(ME, headers=ana)) for _ in range(2)]
        assert seen == [(3, 1), (3, 0)]
        refused = problem(await http.get(ME, headers=ana), 429, "rate_limited")
        assert "3 per 1 minute" in refused["detail"]
        last = await http.get(ME, headers=ana)
        assert 1 <= int(last.headers["Retry-After"]) <= 60
        assert quota(last) == (3, 0)
        assert quota(await http.get(ME, headers=bea)) == (3, 2)
        key = {"X-API-Key": created.json()["key"]}
        assert quota(await http.get(ME, headers=key)) == (3, 2)


async def test_password_routes_have_a_stricter_limit_per_address(
    client: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    app = limited_app(database_url, tmp_path, rate_limit_auth="2/minute", trusted_proxies="127.0.0.1")
    async with serve(app) as http:
        form = {"username": "nobody@example.org", "password": "wrong password!"}
        assert (await http.post("/api/v1/auth/jwt/login", data=form)).status_code == 400
        response = await http.post("/api/v1/auth/register", json={"email": "x@example.org", "password": PASSWORD})
        assert response.status_code == 201
        assert quota(response) == (2, 0)
        blocked = await http.post("/api/v1/auth/jwt/login", data=form)
        problem(blocked, 429, "rate_limited")
        assert "Retry-After" in blocked.headers
        elsewhere = await http.post("/api/v1/auth/jwt/login", data=form, headers={"X-Forwarded-For": "198.51.100.7"})
        assert elsewhere.status_code == 400


async def test_requests_without_valid_credentials_are_limited_per_address(
    client: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    """Guessing tokens or API keys: after RATE_LIMIT_ANONYMOUS failures an address gets 429, not another try."""
    app = limited_app(database_url, tmp_path, rate_limit_anonymous="3/minute", trusted_proxies="127.0.0.1")
    async with serve(app) as http:
        ana = await account(http, "ana")
        guesses = [{"Authorization": "Bearer apt_guess"}, {"X-API-Key": "apk_guess_guess"}, {}]
        for headers in guesses:
            problem(await http.get(ME, headers=headers), 401, "not_authenticated")
        refused = problem(await http.get(ME, headers={"Authorization": "Bearer apt_another"}), 429, "rate_limited")
        assert "3 per 1 minute" in refused["detail"]
        assert (await http.get(ME, headers=ana)).status_code == 200, "valid credentials are not held back"
        elsewhere = await http.get(ME, headers={"X-API-Key": "apk_guess_guess", "X-Forwarded-For": "198.51.100.7"})
        problem(elsewhere, 401, "not_authenticated")
        assert (await http.get("/health/live")).status_code == 200


async def test_repeated_wrong_passwords_lock_the_email_for_a_while(
    client: httpx.AsyncClient, database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="annotation_platform.security")
    app = limited_app(database_url, tmp_path, login_lockout_attempts=3, login_lockout_seconds=600)
    async with serve(app) as http:
        await account(http, "ana")
        wrong = {"username": "ana@example.org", "password": "not the passphrase"}
        right = {"username": "ana@example.org", "password": PASSWORD}
        for _ in range(3):
            problem(await http.post("/api/v1/auth/jwt/login", data=wrong), 400, "invalid_credentials")
        locked = await http.post("/api/v1/auth/jwt/login", data=right)
        problem(locked, 429, "login_locked")
        assert 1 <= int(locked.headers["Retry-After"]) <= 600
        assert "login locked" in caplog.text
        assert "ana@example.org" not in caplog.text
        # Other accounts are untouched, and an email nobody has locks the same way (nothing to enumerate).
        await account(http, "bea")
        ghost = {"username": "ghost@example.org", "password": "not the passphrase"}
        answers = [(await http.post("/api/v1/auth/jwt/login", data=ghost)).status_code for _ in range(4)]
        assert answers == [400, 400, 400, 429]


async def test_a_successful_login_clears_the_failures(
    client: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    async with serve(limited_app(database_url, tmp_path, login_lockout_attempts=2)) as http:
        await account(http, "ana")
        wrong = {"username": "ana@example.org", "password": "not the passphrase"}
        right = {"username": "ana@example.org", "password": PASSWORD}
        assert (await http.post("/api/v1/auth/jwt/login", data=wrong)).status_code == 400
        assert (await http.post("/api/v1/auth/jwt/login", data=right)).status_code == 200
        assert (await http.post("/api/v1/auth/jwt/login", data=wrong)).status_code == 400
        assert (await http.post("/api/v1/auth/jwt/login", data=right)).status_code == 200


def redis_url_or_skip() -> str:
    try:
        redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"Redis not reachable at {TEST_REDIS_URL}: {exc}")
        pytest.skip(f"Redis not reachable at {TEST_REDIS_URL}; set TEST_REDIS_URL")
    return TEST_REDIS_URL


async def test_counters_in_redis_hold_across_api_processes(
    client: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    settings: dict[str, Any] = {
        "redis_url": redis_url_or_skip(),
        "broker_key_prefix": f"test-{uuid.uuid4().hex[:8]}-",
        "rate_limit_default": "3/minute",
    }
    first = limited_app(database_url, tmp_path / "a", **settings)
    second = limited_app(database_url, tmp_path / "b", **settings)
    async with serve(first) as one, serve(second) as two:
        ana = await account(one, "ana")
        assert quota(await one.get(ME, headers=ana)) == (3, 2)
        assert quota(await two.get(ME, headers=ana)) == (3, 1)
        assert quota(await one.get(ME, headers=ana)) == (3, 0)
        problem(await two.get(ME, headers=ana), 429, "rate_limited")


async def test_an_unreachable_counter_store_lets_requests_through(
    client: httpx.AsyncClient, database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = limited_app(database_url, tmp_path, redis_url="redis://127.0.0.1:1/0", rate_limit_default="1/minute")
    async with serve(app) as http:
        ana = await account(http, "ana")
        for _ in range(3):
            response = await http.get(ME, headers=ana)
            assert response.status_code == 200, response.text
            assert "X-RateLimit-Limit" not in response.headers
    assert "rate limit store unreachable" in caplog.text


async def test_the_global_allow_list_turns_away_other_addresses(
    client: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    app = limited_app(database_url, tmp_path, ip_allowlist="10.0.0.0/8", trusted_proxies="127.0.0.1")
    async with serve(app) as http:
        refused = problem(await http.get(ME, headers={"X-Request-ID": "allow-list-1"}), 403, "ip_not_allowed")
        assert refused["request_id"] == "allow-list-1"
        problem(await http.get("/docs"), 403, "ip_not_allowed")
        assert (await http.get("/health/live")).status_code == 200
        through_proxy = await http.get(ME, headers={"X-Forwarded-For": "10.20.30.40"})
        problem(through_proxy, 401, "not_authenticated")
    untrusted = limited_app(database_url, tmp_path, ip_allowlist="10.0.0.0/8")
    async with serve(untrusted) as http:
        problem(await http.get(ME, headers={"X-Forwarded-For": "10.20.30.40"}), 403, "ip_not_allowed")
