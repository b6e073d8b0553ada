"""A webhook receiver on loopback for the tests, and an independent check of Standard Webhooks signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass
class Call:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)


class Receiver:
    """Records every POST to /hook and answers with the next status of `answers` (204 once they run out); a POST
    to /moved is recorded too and redirected (307) to /hook."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.calls: list[Call] = []
        self.answers: list[int] = []
        self.always: int | None = None

        async def hook(request: Request) -> Response:
            self.calls.append(Call(dict(request.headers), await request.body()))
            status = self.always or (self.answers.pop(0) if self.answers else 204)
            return Response(b"x" * 2000 if status >= 500 else b"", status_code=status)

        async def moved(request: Request) -> Response:
            self.calls.append(Call(dict(request.headers), await request.body()))
            return Response(b"", status_code=307, headers={"Location": "/hook"})

        app = Starlette(routes=[Route("/hook", hook, methods=["POST"]), Route("/moved", moved, methods=["POST"])])
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


def running_receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.thread.start()
    deadline = time.monotonic() + 10
    while not receiver.server.started:
        assert time.monotonic() < deadline, "the webhook receiver did not start"
        time.sleep(0.01)
    yield receiver
    receiver.server.should_exit = True
    receiver.thread.join(timeout=10)


def valid_signatures(secret: str, call: Call) -> int:
    """How many of the call's `v1,` signatures this secret makes (written from the Standard Webhooks spec, not
    from the server's code)."""
    key = base64.b64decode(secret.split("_", 1)[1])
    signed = b".".join([call.headers["webhook-id"].encode(), call.headers["webhook-timestamp"].encode(), call.body])
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    versions = [part.split(",", 1) for part in call.headers["webhook-signature"].split(" ")]
    assert all(version == "v1" for version, _ in versions)
    assert abs(time.time() - int(call.headers["webhook-timestamp"])) < 300
    return sum(hmac.compare_digest(signature, expected) for _, signature in versions)
