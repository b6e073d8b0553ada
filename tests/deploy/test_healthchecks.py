"""The compose file's beat healthcheck, run for real against a real `celery beat` (whose schedule file it looks
for), and failing where there is none."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from annotation_platform.config import Settings

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0


def beat_healthcheck(data_dir: Path) -> list[str]:
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    kind, command = services["beat"]["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    # compose turns $$ into $; the container's DATA_DIR is /data.
    return ["sh", "-c", command.replace("$$", "$").replace("/data", str(data_dir))]


def test_the_beat_healthcheck_sees_a_running_beat(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert subprocess.run(beat_healthcheck(data_dir), check=False).returncode != 0  # nothing there yet

    names = {name.upper() for name in Settings.model_fields}
    env = {key: value for key, value in os.environ.items() if key.upper() not in names}
    env.update(ENVIRONMENT="test", DATA_DIR=str(data_dir), SECRET_KEY="x" * 40, BACKUP_SCHEDULE_HOURS="0")
    log = tmp_path / "beat.log"
    with log.open("wb") as output:
        beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers.app", "beat", "--loglevel=INFO"],
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while subprocess.run(beat_healthcheck(data_dir), check=False).returncode != 0:
            assert beat.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"no schedule file after {START_TIMEOUT}s:\n{log.read_text()}"
            time.sleep(0.5)
    finally:
        beat.terminate()
        beat.wait(timeout=30)
