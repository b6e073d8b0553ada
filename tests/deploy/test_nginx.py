"""deploy/nginx: the upload limit is the app's (MAX_UPLOAD_BYTES plus the multipart slack the app allows), TLS
and HSTS are on, proxy headers are sent, and the export download route it streams exists."""

from __future__ import annotations

import re
from pathlib import Path

from annotation_platform.config import Settings
from annotation_platform.main import create_app

CONFIG = (Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "annotation-platform.conf").read_text()
MULTIPART_SLACK = 64 * 1024  # core.middleware.BodySizeLimitMiddleware


def directive(name: str) -> list[str]:
    return re.findall(rf"^\s*{name}\s+([^;]+);", CONFIG, flags=re.MULTILINE)


def test_upload_limit_matches_the_apps() -> None:
    default = Settings.model_fields["max_upload_bytes"].default
    assert directive("client_max_body_size") == [str(default + MULTIPART_SLACK)]


def test_tls_hsts_and_forwarded_headers() -> None:
    assert directive("ssl_protocols") == ["TLSv1.2 TLSv1.3"]
    assert any(value.startswith("Strict-Transport-Security") for value in directive("add_header"))
    assert "X-Forwarded-Proto $scheme" in directive("proxy_set_header")
    assert "X-Forwarded-For $proxy_add_x_forwarded_for" in directive("proxy_set_header")


def test_the_streamed_download_location_is_a_real_route(tmp_path: Path) -> None:
    (pattern,) = re.findall(r"location ~ \^([^$]+)\$", CONFIG)
    app = create_app(Settings(data_dir=tmp_path, secret_key="x" * 40))
    job_id = "0198c7e4-0000-7000-8000-000000000000"
    paths = [path.replace("{job_id}", job_id) for path in app.openapi()["paths"]]
    assert [path for path in paths if re.fullmatch(pattern, path)] == [f"/api/v1/jobs/{job_id}/download"]
