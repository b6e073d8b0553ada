from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request, Response, status

from annotation_platform.auth.dependencies import CurrentUser
from annotation_platform.config import SettingsDep
from annotation_platform.core.crypto import KeyRing
from annotation_platform.core.db import SessionDep
from annotation_platform.core.errors import (
    BODY_ERRORS,
    LIST_ERRORS,
    Forbidden,
    NotAuthenticated,
    NotFound,
    problem_responses,
)
from annotation_platform.core.ids import path_id
from annotation_platform.core.pagination import Page, PageParamsDep, page_response
from annotation_platform.core.routing import ApiRouter
from annotation_platform.models import Webhook
from annotation_platform.project.dependencies import ProjectManager
from annotation_platform.webhook.schemas import (
    WebhookCreate,
    WebhookCreated,
    WebhookDeliveryRead,
    WebhookRead,
    WebhookSecretRead,
    WebhookSecretRotate,
    WebhookUpdate,
)
from annotation_platform.webhook.service import DeliveryNotFinished, WebhookTargetRefused, webhook_service

router = ApiRouter(prefix="/projects/{project_id}/webhooks", tags=["webhooks"])

_ONE = (NotAuthenticated, Forbidden, NotFound)
_BODY_ERRORS = (*BODY_ERRORS, WebhookTargetRefused)


async def key_ring_of(request: Request) -> KeyRing:
    key_ring: KeyRing = request.app.state.key_ring
    return key_ring


KeyRingDep = Annotated[KeyRing, Depends(key_ring_of)]


async def managed_webhook(
    webhook_id: Annotated[str, Path(description="Webhook id.")], access: ProjectManager, session: SessionDep
) -> Webhook:
    return await webhook_service.get(session, access=access, webhook_id=path_id(webhook_id, "webhook"))


ManagedWebhook = Annotated[Webhook, Depends(managed_webhook)]


@router.get(
    "",
    operation_id="listWebhooks",
    response_model=Page[WebhookRead],
    responses=problem_responses(*LIST_ERRORS, Forbidden),
)
async def list_webhooks(
    request: Request, access: ProjectManager, session: SessionDep, settings: SettingsDep, page: PageParamsDep
) -> Response:
    """The project's webhooks, oldest first (managers and owners; never their secrets)."""
    webhooks, cursor, total = await webhook_service.page(session, access=access, params=page)
    return page_response(request, webhooks, cursor, total, settings.public_base_url)


@router.post(
    "",
    operation_id="createWebhook",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookCreated,
    responses=problem_responses(*_ONE, *_BODY_ERRORS),
)
async def create_webhook(
    body: WebhookCreate,
    access: ProjectManager,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    key_ring: KeyRingDep,
    response: Response,
) -> WebhookCreated:
    """Register a URL for some event types (managers and owners). The answer holds the signing `secret` this one
    time only; it is stored encrypted. docs/webhooks.md shows the body and how to verify the signature."""
    created = await webhook_service.create(
        session, access=access, user_id=user.id, data=body, settings=settings, key_ring=key_ring
    )
    response.headers["Location"] = f"/api/v1/projects/{created.project_id}/webhooks/{created.id}"
    return created


@router.get("/{webhook_id}", operation_id="getWebhook", response_model=WebhookRead, responses=problem_responses(*_ONE))
async def get_webhook(webhook: ManagedWebhook) -> WebhookRead:
    """One webhook: its URL, event types, whether it is active, and why it was disabled if it was."""
    return WebhookRead.of(webhook)


@router.patch(
    "/{webhook_id}",
    operation_id="updateWebhook",
    response_model=WebhookRead,
    responses=problem_responses(*_ONE, *_BODY_ERRORS),
)
async def update_webhook(
    body: WebhookUpdate, webhook: ManagedWebhook, session: SessionDep, settings: SettingsDep
) -> WebhookRead:
    """Change the URL, event types or description; `active: false` pauses it, `active: true` resumes it (also
    after the server disabled it), sending what waited, in order."""
    return await webhook_service.update(session, webhook=webhook, data=body, settings=settings)


@router.delete(
    "/{webhook_id}",
    operation_id="deleteWebhook",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(*_ONE),
)
async def delete_webhook(webhook: ManagedWebhook, session: SessionDep) -> Response:
    """Delete a webhook with its delivery log; pending deliveries are dropped."""
    await webhook_service.delete(session, webhook=webhook)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{webhook_id}/rotate-secret",
    operation_id="rotateWebhookSecret",
    response_model=WebhookSecretRead,
    responses=problem_responses(*_ONE, *BODY_ERRORS),
)
async def rotate_webhook_secret(
    webhook: ManagedWebhook,
    session: SessionDep,
    settings: SettingsDep,
    key_ring: KeyRingDep,
    body: WebhookSecretRotate | None = None,
) -> WebhookSecretRead:
    """A new signing secret, shown this once. For `keep_previous_seconds` (default WEBHOOK_SECRET_GRACE_SECONDS)
    calls carry two signatures, one per secret, so receivers can switch without missing a call."""
    return await webhook_service.rotate_secret(
        session, webhook=webhook, data=body or WebhookSecretRotate(), settings=settings, key_ring=key_ring
    )


@router.get(
    "/{webhook_id}/deliveries",
    operation_id="listWebhookDeliveries",
    response_model=Page[WebhookDeliveryRead],
    responses=problem_responses(*LIST_ERRORS, Forbidden),
)
async def list_webhook_deliveries(
    request: Request, webhook: ManagedWebhook, session: SessionDep, settings: SettingsDep, page: PageParamsDep
) -> Response:
    """The webhook's deliveries, oldest first: body, status, attempts, last answer's status and latency."""
    deliveries, cursor, total = await webhook_service.deliveries(session, webhook=webhook, params=page)
    return page_response(request, deliveries, cursor, total, settings.public_base_url)


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    operation_id="redeliverWebhookDelivery",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=WebhookDeliveryRead,
    responses=problem_responses(*_ONE, DeliveryNotFinished),
)
async def redeliver_webhook_delivery(
    delivery_id: Annotated[str, Path(description="Delivery id.")], webhook: ManagedWebhook, session: SessionDep
) -> WebhookDeliveryRead:
    """Send a finished (succeeded or given-up) delivery again, as a new delivery with the same `webhook-id` and
    body, queued behind the webhook's pending ones."""
    return await webhook_service.redeliver(session, webhook=webhook, delivery_id=path_id(delivery_id, "delivery"))
