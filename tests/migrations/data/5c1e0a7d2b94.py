"""agreement and gold: existing annotations come through as ordinary (not gold) annotations, existing jobs keep
their kinds, and the new report table starts empty.

The rows are those of the jobs migration (`9fef43e14e30.py`), loaded from beside this file, plus one export job.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

from tests.migrations.data_modules import load

JOB = "01900000-0000-7000-8000-000000000009"


def _job_id(connection: Connection) -> str:
    return JOB if connection.dialect.name == "postgresql" else JOB.replace("-", "")


def seed(connection: Connection) -> None:
    load("9fef43e14e30").seed(connection)
    connection.execute(
        text(
            "INSERT INTO jobs (id, kind, status, params, progress_done, progress_total, error_count, "
            "cancel_requested, attempts, created_at) "
            "VALUES (:id, 'export', 'succeeded', '{}', 3, 3, 0, false, 1, CURRENT_TIMESTAMP)"
        ),
        {"id": _job_id(connection)},
    )


def verify(connection: Connection) -> None:
    # SQLite rebuilds the jobs table to change its kind check: the job must survive that.
    row = connection.execute(text("SELECT kind, status, progress_done FROM jobs")).one()
    assert tuple(row) == ("export", "succeeded", 3)
    assert connection.execute(text("SELECT count(*) FROM annotations WHERE is_gold")).scalar_one() == 0
    assert connection.execute(text("SELECT count(*) FROM agreement_results")).scalar_one() == 0
    # The jobs migration's checks expect no jobs: drop ours in this uncommitted transaction, then run them all.
    connection.execute(text("DELETE FROM jobs WHERE id = :id"), {"id": _job_id(connection)})
    load("9fef43e14e30").verify(connection)
