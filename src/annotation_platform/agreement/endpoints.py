from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query, Request, Response, status
from fastapi.responses import JSONResponse

from annotation_platform.agreement.metrics import DEFAULT_WINDOW
from annotation_platform.agreement.schemas import AgreementRead, GoldCreate, GoldRead, ItemLabelsRead, MeasureKind
from annotation_platform.agreement.service import AnnotatorHasNoLabels, GoldExists, agreement_service
from annotation_platform.auth.dependencies import CurrentUser
from annotation_platform.config import SettingsDep
from annotation_platform.container.dependencies import ContainerReader, container_access
from annotation_platform.container.service import ContainerAccess
from annotation_platform.core.db import SessionDep
from annotation_platform.core.errors import (
    BODY_ERRORS,
    Forbidden,
    InvalidCursor,
    NotAuthenticated,
    NotFound,
    ValidationFailed,
    problem_responses,
)
from annotation_platform.core.pagination import Page, PageParamsDep, page_response
from annotation_platform.core.routing import ApiRouter
from annotation_platform.core.schemas import TypeSlug
from annotation_platform.job.schemas import JobRead
from annotation_platform.models import Job
from annotation_platform.project.dependencies import ProjectReader
from annotation_platform.project.permissions import Action

router = ApiRouter(tags=["agreement"])

ContainerAdjudicator = Annotated[ContainerAccess, Depends(container_access(Action.adjudicate))]

TypeQuery = Annotated[TypeSlug, Query(description="The annotation type, e.g. `thread` or `sentiment`.")]
KindQuery = Annotated[
    MeasureKind | None,
    Query(description="`clustering` or `categorical` measures; default: clustering for `thread`, else categorical."),
]
WindowQuery = Annotated[int, Query(ge=1, le=100, description="k of local agreement: items compared k back.")]
ContextQuery = Annotated[int, Query(ge=0, le=10, description="How many neighbouring items to show on each side.")]

_READ_ERRORS = (NotAuthenticated, NotFound, ValidationFailed)
_LIST_ERRORS = (NotAuthenticated, NotFound, InvalidCursor, ValidationFailed)
_ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {
        "model": JobRead,
        "description": "The container is big: a worker computes the report. Follow the job at `Location`, then ask "
        "again (the job's `result` holds the report too).",
    }
}


def _report_or_job(result: AgreementRead | Job) -> Any:
    if isinstance(result, Job):
        return JSONResponse(
            JobRead.of(result).model_dump(mode="json"),
            status_code=status.HTTP_202_ACCEPTED,
            headers={"Location": f"/api/v1/jobs/{result.id}"},
        )
    return result


@router.get(
    "/containers/{container_id}/agreement",
    operation_id="getContainerAgreement",
    response_model=AgreementRead,
    responses={**problem_responses(*_READ_ERRORS), **_ACCEPTED},
)
async def get_container_agreement(
    access: ContainerReader,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    type: TypeQuery,
    kind: KindQuery = None,
    window: WindowQuery = DEFAULT_WINDOW,
) -> Any:
    """How far the annotators agree on this annotation type: every pair, and each against the gold set.

    Served from a cache until an annotation of the type changes; a big container answers 202 with a job."""
    result = await agreement_service.container_report(
        session, access=access, user=user, type_=type, kind=kind, window=window, settings=settings
    )
    return _report_or_job(result)


@router.get(
    "/projects/{project_id}/agreement",
    operation_id="getProjectAgreement",
    response_model=AgreementRead,
    responses={**problem_responses(*_READ_ERRORS), **_ACCEPTED},
)
async def get_project_agreement(
    access: ProjectReader,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    type: TypeQuery,
    kind: KindQuery = None,
    window: WindowQuery = DEFAULT_WINDOW,
) -> Any:
    """Agreement over every container of the project: each figure is the item-weighted mean of the containers'."""
    result = await agreement_service.project_report(
        session, access=access, user=user, type_=type, kind=kind, window=window, settings=settings
    )
    return _report_or_job(result)


@router.get(
    "/containers/{container_id}/disagreements",
    operation_id="listDisagreements",
    response_model=Page[ItemLabelsRead],
    responses=problem_responses(*_LIST_ERRORS),
)
async def list_disagreements(
    request: Request,
    access: ContainerReader,
    session: SessionDep,
    settings: SettingsDep,
    page: PageParamsDep,
    type: TypeQuery,
    kind: KindQuery = None,
    context: ContextQuery = 2,
) -> Response:
    """The items where annotators differ, in container order, with each annotator's label and the turns around."""
    found = await agreement_service.disagreements(
        session, access=access, type_=type, kind=kind, params=page, context=context
    )
    total = found.total if page.include_total else None
    return page_response(request, found.items, found.next_cursor, total, settings.public_base_url)


@router.get(
    "/containers/{container_id}/gold",
    operation_id="getGold",
    response_model=GoldRead,
    responses=problem_responses(*_READ_ERRORS),
)
async def get_gold(access: ContainerReader, session: SessionDep, type: TypeQuery) -> GoldRead:
    """How far the gold set of this type has got: items settled and items still open."""
    return await agreement_service.gold_status(session, access=access, type_=type)


@router.post(
    "/containers/{container_id}/gold",
    operation_id="createGold",
    status_code=status.HTTP_201_CREATED,
    response_model=GoldRead,
    responses=problem_responses(NotAuthenticated, Forbidden, NotFound, *BODY_ERRORS, GoldExists, AnnotatorHasNoLabels),
)
async def create_gold(
    access: ContainerAdjudicator, user: CurrentUser, session: SessionDep, data: GoldCreate, response: Response
) -> GoldRead:
    """Start the gold set (reviewers and above): from one annotator's labels, or by majority vote with ties left
    open. Settle the open items by creating annotations with `is_gold: true`."""
    gold = await agreement_service.create_gold(session, access=access, user=user, data=data)
    response.headers["Location"] = f"/api/v1/containers/{access.container.id}/gold?type={data.type}"
    return gold


@router.delete(
    "/containers/{container_id}/gold",
    operation_id="deleteGold",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(NotAuthenticated, Forbidden, NotFound, ValidationFailed),
)
async def delete_gold(access: ContainerAdjudicator, session: SessionDep, type: TypeQuery) -> Response:
    """Delete the gold set of this type (reviewers and above), to start it again."""
    await agreement_service.delete_gold(session, access=access, type_=type)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/containers/{container_id}/gold/open",
    operation_id="listOpenGoldItems",
    response_model=Page[ItemLabelsRead],
    responses=problem_responses(*_LIST_ERRORS),
)
async def list_open_gold_items(
    request: Request,
    access: ContainerReader,
    session: SessionDep,
    settings: SettingsDep,
    page: PageParamsDep,
    type: TypeQuery,
    context: ContextQuery = 2,
) -> Response:
    """Labelled items without a gold annotation yet, in container order, with every label and the turns around."""
    found = await agreement_service.open_items(session, access=access, type_=type, params=page, context=context)
    total = found.total if page.include_total else None
    return page_response(request, found.items, found.next_cursor, total, settings.public_base_url)
