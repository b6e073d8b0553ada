"""Submit imports as background jobs and wait for them with exponential backoff (async httpx).

    API_URL=http://127.0.0.1:8000 API_TOKEN=<bearer token> \
        python examples/batch_import.py <container_id> room.csv [more.csv ...]

(or API_KEY=<key> with the `write` scope instead of API_TOKEN). Each file is submitted with an
`Idempotency-Key` derived from its content, so running the script again after a crash or a timeout gets the
same jobs back instead of importing twice. Polling starts at 0.2 s and doubles up to 10 s with jitter; a 429
waits as long as `Retry-After` says. Prints one JSON line per job; exits 1 if any job did not succeed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import sys
from pathlib import Path
from typing import Any

import httpx

API_URL = os.environ.get("API_URL", "http://127.0.0.1:8000")
FIRST_DELAY, MAX_DELAY, TIMEOUT = 0.2, 10.0, 600.0
ENDED = ("succeeded", "failed", "cancelled")


def credentials() -> dict[str, str]:
    if token := os.environ.get("API_TOKEN"):
        return {"Authorization": f"Bearer {token}"}
    if key := os.environ.get("API_KEY"):
        return {"X-API-Key": key}
    raise SystemExit("set API_TOKEN (from POST /api/v1/auth/jwt/login) or API_KEY")


async def request(http: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One call, retried after a 429 (Retry-After) or a 503 (not ready), up to five times."""
    for _attempt in range(5):
        response = await http.request(method, url, **kwargs)
        if response.status_code not in (429, 503):
            break
        await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
    if response.is_error:
        problem = response.json()
        raise RuntimeError(f"{method} {url}: {response.status_code} {problem['code']}: {problem['detail']}")
    return response


async def submit(http: httpx.AsyncClient, container_id: str, path: Path) -> dict[str, Any]:
    content = await asyncio.to_thread(path.read_bytes)
    response = await request(
        http,
        "POST",
        f"/api/v1/containers/{container_id}/imports",
        files={"file": (path.name, content, "text/csv")},
        data={"format": path.suffix.lstrip(".") or "csv"},
        headers={"Idempotency-Key": hashlib.sha256(content).hexdigest()},
    )
    return dict(response.json())


async def wait(http: httpx.AsyncClient, job: dict[str, Any]) -> dict[str, Any]:
    delay, waited = FIRST_DELAY, 0.0
    while job["status"] not in ENDED:
        if waited > TIMEOUT:
            raise TimeoutError(f"job {job['id']} still {job['status']} after {TIMEOUT}s")
        pause = delay * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not a secret
        await asyncio.sleep(pause)
        waited += pause
        delay = min(delay * 2, MAX_DELAY)
        job = (await request(http, "GET", f"/api/v1/jobs/{job['id']}")).json()
    if job["error_count"]:
        errors = await request(http, "GET", f"/api/v1/jobs/{job['id']}/errors", params={"limit": 20})
        job["first_errors"] = errors.json()["items"]
    return job


async def main(container_id: str, files: list[Path]) -> int:
    async with httpx.AsyncClient(base_url=API_URL, headers=credentials(), timeout=60) as http:
        jobs = [await submit(http, container_id, path) for path in files]
        finished = await asyncio.gather(*(wait(http, job) for job in jobs))
    for path, job in zip(files, finished, strict=True):
        print(json.dumps({"file": path.name, "job": job["id"], "status": job["status"], "result": job["result"]}))
    return 0 if all(job["status"] == "succeeded" for job in finished) else 1


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    sys.exit(asyncio.run(main(sys.argv[1], [Path(name) for name in sys.argv[2:]])))
