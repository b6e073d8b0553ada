"""Login through an OpenID Connect provider: a fake one, started on loopback, answers over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from annotation_platform.main import create_app
from tests.auth.fake_oidc import CLIENT_ID, CLIENT_SECRET, FakeProvider, RunningProvider
from tests.conftest import PASSWORD, make_settings, problem, serve

OAUTH = "/api/v1/auth/oauth/acme"


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    with RunningProvider() as running:
        yield running


def oidc_app(database_url: str, tmp_path: Path, provider: FakeProvider, **overrides: Any) -> Any:
    settings = make_settings(
        database_url,
        tmp_path,
        oidc_issuer=provider.issuer,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
        oidc_provider_name="acme",
        **overrides,
    )
    return create_app(settings)


@pytest.fixture
async def http(
    client: httpx.AsyncClient, database_url: str, tmp_path: Path, provider: FakeProvider
) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(oidc_app(database_url, tmp_path, provider)) as http:
        yield http


async def authorization_of(http: httpx.AsyncClient, provider: FakeProvider) -> dict[str, str]:
    """The query of the provider URL that `/authorize` hands out (what the browser is sent to)."""
    response = await http.get(f"{OAUTH}/authorize")
    assert response.status_code == 200, response.text
    url = urlsplit(response.json()["authorization_url"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{provider.issuer}/authorize"
    query = {key: values[0] for key, values in parse_qs(url.query).items()}
    assert query["client_id"] == CLIENT_ID
    assert query["response_type"] == "code"
    assert query["redirect_uri"] == f"http://testserver{OAUTH}/callback"
    assert "openid" in query["scope"].split()
    assert query["code_challenge_method"] == "S256"
    return query


async def state_of(http: httpx.AsyncClient, provider: FakeProvider) -> str:
    return (await authorization_of(http, provider))["state"]


async def login(http: httpx.AsyncClient, provider: FakeProvider, **claims: Any) -> httpx.Response:
    """The browser's round trip: /authorize (cookie set), the provider's page (a code for this PKCE challenge),
    back to the callback."""
    query = await authorization_of(http, provider)
    code = provider.grant(challenge=query["code_challenge"], **claims)
    return await http.get(f"{OAUTH}/callback", params={"code": code, "state": query["state"]})


async def test_a_provider_login_creates_an_account_and_a_session(
    http: httpx.AsyncClient, provider: FakeProvider
) -> None:
    response = await login(http, provider, sub="u-1", email="Zoe@Example.org", email_verified=True)
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    assert token.startswith("apt_")
    me = await http.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert (me.json()["email"], me.json()["is_verified"]) == ("zoe@example.org", True)
    assert provider.token_requests[-1]["redirect_uri"] == f"http://testserver{OAUTH}/callback"

    again = await login(http, provider, sub="u-1", email="zoe@example.org", email_verified=True)
    me_again = await http.get("/api/v1/users/me", headers={"Authorization": f"Bearer {again.json()['access_token']}"})
    assert me_again.json()["id"] == me.json()["id"]
    # The account has an unusable random password: nobody can log in with a guess.
    denied = await http.post("/api/v1/auth/jwt/login", data={"username": "zoe@example.org", "password": PASSWORD})
    assert denied.status_code == 400


async def test_a_bad_state_or_code_is_refused(http: httpx.AsyncClient, provider: FakeProvider) -> None:
    code = provider.grant(sub="u-2", email="x@example.org")
    problem(await http.get(f"{OAUTH}/callback", params={"code": code, "state": "forged"}), 400, "oauth_failed")
    state = await state_of(http, provider)
    problem(await http.get(f"{OAUTH}/callback", params={"code": "never-granted", "state": state}), 400, "oauth_failed")
    problem(await http.get(f"{OAUTH}/callback", params={"state": state}), 422, "validation_failed")


async def test_a_login_finishes_only_in_the_browser_that_started_it(
    http: httpx.AsyncClient, provider: FakeProvider
) -> None:
    """Login CSRF: a callback link made from someone else's /authorize (their state, their code) is refused."""
    query = await authorization_of(http, provider)
    code = provider.grant(challenge=query["code_challenge"], sub="mallory-1", email="mallory@example.org")
    http.cookies.clear()

    refused = await http.get(f"{OAUTH}/callback", params={"code": code, "state": query["state"]})

    problem(refused, 400, "oauth_failed")
    assert "not started in this browser" in refused.json()["detail"]
    assert provider.token_requests == []


async def test_the_code_is_exchanged_with_the_pkce_verifier_and_the_cookie_is_used_once(
    http: httpx.AsyncClient, provider: FakeProvider
) -> None:
    response = await login(http, provider, sub="ana-pkce", email="ana.pkce@example.org")

    assert response.status_code == 200, response.text
    [exchange] = provider.token_requests
    assert exchange["code_verifier"]
    assert "annotation_platform_oidc" not in http.cookies
    stale_state = await state_of(http, provider)
    http.cookies.clear()
    code = provider.grant(sub="ana-pkce", email="ana.pkce@example.org")
    problem(await http.get(f"{OAUTH}/callback", params={"code": code, "state": stale_state}), 400, "oauth_failed")


async def test_a_local_accounts_email_is_not_taken_over(
    http: httpx.AsyncClient, provider: FakeProvider, database_url: str, tmp_path: Path
) -> None:
    registered = await http.post("/api/v1/auth/register", json={"email": "ana@example.org", "password": PASSWORD})
    assert registered.status_code == 201
    taken = await login(http, provider, sub="u-3", email="ana@example.org", email_verified=True)
    problem(taken, 409, "oauth_email_taken")
    async with serve(oidc_app(database_url, tmp_path, provider, oidc_associate_by_email=True)) as linking:
        unverified = await login(linking, provider, sub="u-3", email="ana@example.org", email_verified=False)
        problem(unverified, 409, "oauth_email_taken")
        linked = await login(linking, provider, sub="u-3", email="ana@example.org", email_verified=True)
        assert linked.status_code == 200, linked.text
        me = await linking.get("/api/v1/users/me", headers={"Authorization": f"Bearer {linked.json()['access_token']}"})
        assert me.json()["id"] == registered.json()["id"]


async def test_unknown_or_unconfigured_providers_answer_404(http: httpx.AsyncClient, client: httpx.AsyncClient) -> None:
    problem(await http.get("/api/v1/auth/oauth/other/authorize"), 404, "oauth_provider_unknown")
    problem(await client.get(f"{OAUTH}/authorize"), 404, "oauth_provider_unknown")


async def test_an_unreachable_provider_answers_503(
    client: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(
        database_url, tmp_path, oidc_issuer="http://127.0.0.1:1", oidc_client_id="x", oidc_provider_name="acme"
    )
    async with serve(create_app(settings)) as http:
        problem(await http.get(f"{OAUTH}/authorize"), 503, "oauth_provider_unavailable")
