"""Swagger UI (/docs) and ReDoc (/redoc) render every operation in headless Chromium, with no network beyond
the server itself (the assets are local). Skipped when Chromium is missing, except under CI=true (CI installs
Debian's `chromium` with `make browser-tools`)."""

from __future__ import annotations

import html
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import in_ci
from tests.served.conftest import Served

# Debian's package, Ubuntu's name for it, or the Chrome that GitHub's runners come with.
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
RENDER_TIMEOUT = 120


def rendered(url: str, profile: Path) -> str:
    if CHROMIUM is None:
        if in_ci():
            pytest.fail("chromium is not installed (CI=true: `make browser-tools` installs it)")
        pytest.skip("chromium is not installed (apt-get install chromium, or make browser-tools)")
    ran = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=20000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        timeout=RENDER_TIMEOUT,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr.decode(errors="replace")[-3000:]
    return html.unescape(ran.stdout.decode())


def summaries(served: Served) -> dict[str, str]:
    document = httpx.get(f"{served.url}/openapi.json", timeout=30).json()
    return {
        operation["operationId"]: operation["summary"]
        for item in document["paths"].values()
        for operation in item.values()
        if isinstance(operation, dict) and "operationId" in operation
    }


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_page_renders_every_operation(served: Served, tmp_path: Path, page: str) -> None:
    dom = rendered(f"{served.url}{page}", tmp_path / "profile")
    expected = summaries(served)
    assert len(expected) >= 50
    missing = {operation_id: summary for operation_id, summary in expected.items() if summary not in dom}
    assert missing == {}, f"{page} does not show these operations:\n{dom[:2000]}"
    assert "/api/v1/projects/{project_id}/containers" in dom
    assert "Failed to load API definition" not in dom
