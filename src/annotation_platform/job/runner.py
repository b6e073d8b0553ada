"""How a worker's job ends when it does not succeed: the outcomes every job kind shares, in one place."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from annotation_platform.core.field_crypto import EncryptionKeyUnavailable
from annotation_platform.models import JobStatus


class JobCancelled(Exception):
    """The client cancelled the job: the worker stops, and keeps nothing of what it wrote."""


class JobLost(Exception):
    """The job was no longer `running` when the worker tried to finish it (the reaper failed it meanwhile)."""


async def run_file_job(
    work: Awaitable[None],
    *,
    what: str,
    logger: logging.Logger,
    discard: Callable[[], object],
    finish: Callable[..., Awaitable[Any]],
) -> None:
    """Runs `work`, a job that writes one file (an export, a snapshot), and settles the job when it does not
    succeed: cancelled, lost to the reaper, a key missing from ENCRYPTION_KEYS, or failed. In each case the
    partial file is `discard`ed, so no half-written file outlives its job."""
    try:
        await work
    except JobCancelled:
        discard()
        await finish(JobStatus.cancelled, error_message="Cancelled; no file was kept.")
    except JobLost:
        discard()
        logger.warning("%s: the job was failed by the reaper meanwhile; file removed", what)
    except EncryptionKeyUnavailable as exc:
        logger.error("%s: %s", what, exc.detail)
        discard()
        await finish(JobStatus.failed, error_message=f"{exc.detail} No file was kept.")
    except Exception:
        logger.exception("%s failed", what)
        discard()
        kind = what.split()[0]
        await finish(JobStatus.failed, error_message=f"The {kind} failed unexpectedly; no file was kept.")
