"""Security headers on every response (HSTS only over HTTPS), a CSP that lets the docs pages work, CORS only
for the configured origins, and only the configured Host names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from annotation_platform.main import create_app
from tests.conftest import make_settings, problem


def app_with(database_url: str, tmp_path: Path, **overrides: Any) -> Any:
    return create_app(make_settings(database_url, tmp_path, **overrides))


async def get(app: Any, url: str, base_url: str = "http://testserver", **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as http:
            return await http.request(kwargs.pop("method", "GET"), url, **kwargs)
    finally:
        await app.state.engine.dispose()


async def test_every_response_carries_the_security_headers(client: httpx.AsyncClient) -> None:
    for response in (
        await client.get("/api/v1/users/me"),
        await client.get("/health/live"),
        await client.get("/openapi.json"),
    ):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
        assert "Strict-Transport-Security" not in response.headers  # plain HTTP


async def test_the_docs_pages_get_a_csp_they_can_live_with(client: httpx.AsyncClient) -> None:
    for page in ("/docs", "/redoc"):
        response = await client.get(page)
        assert response.status_code == 200
        policy = response.headers["Content-Security-Policy"]
        assert "script-src 'self' 'unsafe-inline'" in policy
        assert "frame-ancestors 'none'" in policy
        assert "cdn" not in response.text.lower()  # every asset is our own (default-src 'self')


async def test_hsts_over_https(database_url: str, tmp_path: Path) -> None:
    response = await get(app_with(database_url, tmp_path), "/health/live", base_url="https://testserver")
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


async def test_cors_answers_only_the_allowed_origins(database_url: str, tmp_path: Path) -> None:
    preflight = {"Access-Control-Request-Method": "PATCH", "Access-Control-Request-Headers": "authorization,x-api-key"}
    allowed = await get(
        app_with(database_url, tmp_path, cors_origins="https://app.example.org"),
        "/api/v1/projects",
        method="OPTIONS",
        headers={"Origin": "https://app.example.org", **preflight},
    )
    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example.org"
    assert "PATCH" in allowed.headers["Access-Control-Allow-Methods"]
    # For the OpenID Connect login's cookie (docs/security.md); never with a wildcard origin.
    assert allowed.headers["Access-Control-Allow-Credentials"] == "true"
    other = await get(
        app_with(database_url, tmp_path, cors_origins="https://app.example.org"),
        "/api/v1/projects",
        method="OPTIONS",
        headers={"Origin": "https://evil.example.com", **preflight},
    )
    assert other.status_code == 400
    assert "Access-Control-Allow-Origin" not in other.headers
    simple = await get(
        app_with(database_url, tmp_path, cors_origins="https://app.example.org"),
        "/health/live",
        headers={"Origin": "https://app.example.org"},
    )
    assert "X-RateLimit-Limit" in simple.headers["Access-Control-Expose-Headers"]
    unset = await get(app_with(database_url, tmp_path), "/health/live", headers={"Origin": "https://app.example.org"})
    assert "Access-Control-Allow-Origin" not in unset.headers


async def test_only_the_allowed_hosts_are_answered(database_url: str, tmp_path: Path) -> None:
    app = app_with(database_url, tmp_path, allowed_hosts="api.example.org, *.internal.example.org")
    assert (await get(app, "/health/live", base_url="http://api.example.org")).status_code == 200
    app = app_with(database_url, tmp_path, allowed_hosts="api.example.org, *.internal.example.org")
    assert (await get(app, "/health/live", base_url="http://a.internal.example.org")).status_code == 200
    app = app_with(database_url, tmp_path, allowed_hosts="api.example.org")
    refused = await get(app, "/api/v1/projects", base_url="http://attacker.example.com")
    problem(refused, 400, "invalid_host")
    app = app_with(database_url, tmp_path, allowed_hosts="*.internal.example.org")
    refused = await get(app, "/api/v1/projects", base_url="http://internal.example.org.attacker.com:8000")
    problem(refused, 400, "invalid_host")
    app = app_with(database_url, tmp_path, allowed_hosts="api.example.org")
    probe = await get(app, "/health/live", base_url="http://10.1.2.3:8000")
    assert probe.status_code == 200, "orchestrators probe by the pod's address"


async def test_an_oversized_body_is_refused_before_it_is_read(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/register",
        content=b"{}",
        headers={"Content-Type": "application/json", "Content-Length": "999999999"},
    )
    problem(response, 413, "payload_too_large")
