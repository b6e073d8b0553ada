from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Request, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent

from annotation_platform.auth.dependencies import CurrentUser
from annotation_platform.config import SettingsDep
from annotation_platform.core.db import SessionDep
from annotation_platform.core.errors import (
    InvalidCursor,
    NotAuthenticated,
    NotFound,
    ValidationFailed,
    problem_responses,
)
from annotation_platform.core.pagination import Page, PageParamsDep, page_response
from annotation_platform.core.routing import ApiRouter
from annotation_platform.job.dependencies import OwnJob
from annotation_platform.job.schemas import JobErrorRead, JobRead
from annotation_platform.job.service import JobNotCancellable, JobNotRetryable, job_service

router = ApiRouter(prefix="/jobs", tags=["jobs"])

_LIST_ERRORS = (NotAuthenticated, InvalidCursor, ValidationFailed)


@router.get("", operation_id="listJobs", response_model=Page[JobRead], responses=problem_responses(*_LIST_ERRORS))
async def list_jobs(
    request: Request, user: CurrentUser, session: SessionDep, settings: SettingsDep, page: PageParamsDep
) -> Response:
    """The caller's jobs, oldest first (creation order)."""
    jobs, cursor, total = await job_service.page(session, user=user, params=page, settings=settings)
    return page_response(request, jobs, cursor, total, settings.public_base_url)


@router.get(
    "/{job_id}", operation_id="getJob", response_model=JobRead, responses=problem_responses(NotAuthenticated, NotFound)
)
async def get_job(job: OwnJob, settings: SettingsDep) -> JobRead:
    """One of the caller's jobs: status, progress, result."""
    return job_service.read(job, settings=settings)


@router.get(
    "/{job_id}/errors",
    operation_id="listJobErrors",
    response_model=Page[JobErrorRead],
    responses=problem_responses(*_LIST_ERRORS, NotFound),
)
async def list_job_errors(
    request: Request, job: OwnJob, session: SessionDep, settings: SettingsDep, page: PageParamsDep
) -> Response:
    """The row errors an import found, in the order found (`row` is the 1-based data row)."""
    errors, cursor, total = await job_service.errors(session, job=job, params=page)
    return page_response(request, errors, cursor, total, settings.public_base_url)


@router.get(
    "/{job_id}/events",
    operation_id="streamJobEvents",
    response_class=EventSourceResponse,
    responses={
        **problem_responses(NotAuthenticated, NotFound),
        200: {
            "description": "`event: progress` with the job (JSON) whenever its status, progress or error count "
            "change; `event: end` with the job once it has ended, then the stream closes. "
            "A `: ping` comment every 15 s keeps proxies from closing an idle stream.",
            # FastAPI describes each event (`itemSchema`, core/openapi.py keeps it as `x-itemSchema`); a `schema`
            # here would be read by clients and schemathesis as the schema of every event.
            "content": {"text/event-stream": {}},
        },
    },
)
async def stream_job_events(job: OwnJob, request: Request, settings: SettingsDep) -> AsyncIterator[ServerSentEvent]:
    """The job's progress as Server-Sent Events, for clients that would rather not poll `GET /jobs/{id}`."""
    async for name, state in job_service.events(request.app.state.sessionmaker, job_id=job.id, settings=settings):
        yield ServerSentEvent(event=name, data=state)


@router.post(
    "/{job_id}/cancel",
    operation_id="cancelJob",
    response_model=JobRead,
    responses=problem_responses(NotAuthenticated, NotFound, JobNotCancellable),
)
async def cancel_job(job: OwnJob, session: SessionDep, settings: SettingsDep) -> JobRead:
    """Cancel: a queued job at once; a running one stops within a second or two and writes nothing."""
    return JobRead.of(await job_service.cancel(session, job=job, settings=settings))


@router.post(
    "/{job_id}/retry",
    operation_id="retryJob",
    status_code=202,
    response_model=JobRead,
    responses=problem_responses(NotAuthenticated, NotFound, JobNotRetryable),
)
async def retry_job(job: OwnJob, session: SessionDep, settings: SettingsDep) -> JobRead:
    """Run a failed or cancelled job again with the same parameters (and the same uploaded file)."""
    return JobRead.of(await job_service.retry(session, job=job, settings=settings))
