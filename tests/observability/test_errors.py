"""Sentry is off without SENTRY_DSN, on with it, and what it would send is redacted like the logs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from annotation_platform.config import Settings
from annotation_platform.observability.errors import _redact_event, init_sentry

REPO = Path(__file__).resolve().parents[2]


def test_off_without_a_dsn(tmp_path: Path) -> None:
    assert init_sentry(Settings(data_dir=tmp_path)) is False


def test_on_with_a_dsn_in_a_process_of_its_own() -> None:
    """A separate process: the Sentry client is global, and the rest of the suite must run without it."""
    script = (
        "import sentry_sdk\n"
        "from annotation_platform.config import Settings\n"
        "from annotation_platform.observability.errors import init_sentry\n"
        "started = init_sentry(Settings(sentry_dsn='http://public@127.0.0.1:9/1'))\n"
        "client = sentry_sdk.get_client()\n"
        "print(started, client.is_active(), client.options['send_default_pii'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.split() == ["True", "True", "False"], result.stderr


def test_events_are_redacted() -> None:
    event = _redact_event(
        {
            "message": "login for ana@example.org",
            "logentry": {"message": "password=hunter2 given"},
            "exception": {"values": [{"type": "ValueError", "value": "token apt_abcdefghijklmnopqrstuvwxyz"}]},
        },
        {},
    )
    text = str(event)
    for secret in ("ana@example.org", "hunter2", "apt_abcdefghijklmnopqrstuvwxyz"):
        assert secret not in text
