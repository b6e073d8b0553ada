"""A small OpenID Connect provider for tests: discovery, token and userinfo endpoints, served by uvicorn on
loopback in a thread of its own (the app under test calls it over real HTTP)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

CLIENT_ID = "annotation-platform-test"
CLIENT_SECRET = "fake-provider-client-secret"


@dataclass
class FakeProvider:
    """`grant(claims)` gives a code the provider will exchange for a token whose userinfo is `claims`; with a
    PKCE `challenge`, only for the verifier that hashes to it (S256), as a real provider does."""

    port: int
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    challenges: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def grant(self, challenge: str | None = None, **claims: Any) -> str:
        code = secrets.token_urlsafe(8)
        self.codes[code] = claims
        if challenge is not None:
            self.challenges[code] = challenge
        return code

    def app(self) -> Starlette:
        async def discovery(_request: Request) -> JSONResponse:
            return JSONResponse(
                {
                    "issuer": self.issuer,
                    "authorization_endpoint": f"{self.issuer}/authorize",
                    "token_endpoint": f"{self.issuer}/token",
                    "userinfo_endpoint": f"{self.issuer}/userinfo",
                }
            )

        async def token(request: Request) -> JSONResponse:
            form = {key: str(value) for key, value in (await request.form()).items()}
            self.token_requests.append(form)
            code = form.get("code", "")
            claims = self.codes.pop(code, None)
            challenge = self.challenges.pop(code, None)
            verifier = form.get("code_verifier", "")
            hashed = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if form.get("client_secret") != CLIENT_SECRET or claims is None or challenge not in (None, hashed):
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            access_token = secrets.token_urlsafe(16)
            self.tokens[access_token] = claims
            return JSONResponse({"access_token": access_token, "token_type": "Bearer", "expires_in": 60})

        async def userinfo(request: Request) -> JSONResponse:
            claims = self.tokens.get(request.headers.get("authorization", "").removeprefix("Bearer "))
            if claims is None:
                return JSONResponse({"error": "invalid_token"}, status_code=401)
            return JSONResponse(claims)

        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", discovery),
                Route("/token", token, methods=["POST"]),
                Route("/userinfo", userinfo),
            ]
        )


class RunningProvider:
    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        self.provider = FakeProvider(port)
        config = uvicorn.Config(self.provider.app(), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> FakeProvider:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the fake OpenID provider did not start"
            time.sleep(0.01)
        return self.provider

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
