"""SQL for webhooks and their deliveries: the list pages, the outbox rows, the lease and the sweep."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from annotation_platform.core.pagination import Keyset, PageParams, fetch_page
from annotation_platform.models import DeliveryStatus, Membership, Role, User, Webhook, WebhookDelivery

PENDING = DeliveryStatus.pending.value


class WebhookRepository:
    keyset = Keyset(columns=(Webhook.id,), kinds=(uuid.UUID,))
    deliveries_keyset = Keyset(columns=(WebhookDelivery.id,), kinds=(uuid.UUID,))

    async def add(self, session: AsyncSession, webhook: Webhook) -> None:
        session.add(webhook)
        await session.flush()

    async def get(self, session: AsyncSession, webhook_id: uuid.UUID) -> Webhook | None:
        return await session.get(Webhook, webhook_id, populate_existing=True)

    async def get_in_project(
        self, session: AsyncSession, project_id: uuid.UUID, webhook_id: uuid.UUID
    ) -> Webhook | None:
        statement = select(Webhook).where(Webhook.id == webhook_id, Webhook.project_id == project_id)
        return (await session.execute(statement)).scalar_one_or_none()

    async def page(
        self, session: AsyncSession, project_id: uuid.UUID, params: PageParams
    ) -> tuple[list[Webhook], str | None]:
        statement = select(Webhook).where(Webhook.project_id == project_id)
        rows, cursor = await fetch_page(session, statement, self.keyset, params, lambda r: (r[0].id,))
        return [row[0] for row in rows], cursor

    async def count(self, session: AsyncSession, project_id: uuid.UUID) -> int:
        statement = select(func.count()).where(Webhook.project_id == project_id)
        return int((await session.execute(statement)).scalar_one())

    async def delete(self, session: AsyncSession, webhook: Webhook) -> None:
        await session.delete(webhook)
        await session.flush()

    async def subscribers(self, session: AsyncSession, project_id: uuid.UUID) -> list[tuple[uuid.UUID, list[str]]]:
        """The project's active webhooks and the event types each wants."""
        statement = select(Webhook.id, Webhook.event_types).where(
            Webhook.project_id == project_id, Webhook.active.is_(True)
        )
        return [(row.id, list(row.event_types)) for row in await session.execute(statement)]

    async def in_charge(self, session: AsyncSession, webhook: Webhook) -> list[str]:
        """The addresses to tell about the webhook: its creator's while that account is active and manages the
        project (or is a superuser); else, as nobody else would know, those of the project's active owners. Never
        someone who has left the project."""
        if webhook.created_by is not None:
            membership = (Membership.user_id == User.id) & (Membership.project_id == webhook.project_id)
            creator = (
                await session.execute(
                    select(User.email, User.is_active, User.is_superuser, Membership.role)
                    .outerjoin(Membership, membership)
                    .where(User.id == webhook.created_by)
                )
            ).first()
            managing = (Role.manager.value, Role.owner.value)
            if creator is not None and creator.is_active and (creator.role in managing or creator.is_superuser):
                return [creator.email]
        owners = (
            select(User.email)
            .join(Membership, Membership.user_id == User.id)
            .where(
                Membership.project_id == webhook.project_id,
                Membership.role == Role.owner.value,
                User.is_active.is_(True),
            )
            .order_by(User.email)
        )
        return list((await session.execute(owners)).scalars())

    async def add_deliveries(self, session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
        await session.execute(insert(WebhookDelivery), list(rows))

    async def deliveries_page(
        self, session: AsyncSession, webhook_id: uuid.UUID, params: PageParams
    ) -> tuple[list[WebhookDelivery], str | None]:
        statement = select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
        rows, cursor = await fetch_page(session, statement, self.deliveries_keyset, params, lambda r: (r[0].id,))
        return [row[0] for row in rows], cursor

    async def deliveries_count(self, session: AsyncSession, webhook_id: uuid.UUID) -> int:
        statement = select(func.count()).where(WebhookDelivery.webhook_id == webhook_id)
        return int((await session.execute(statement)).scalar_one())

    async def get_delivery(
        self, session: AsyncSession, webhook_id: uuid.UUID, delivery_id: uuid.UUID
    ) -> WebhookDelivery | None:
        statement = select(WebhookDelivery).where(
            WebhookDelivery.id == delivery_id, WebhookDelivery.webhook_id == webhook_id
        )
        return (await session.execute(statement)).scalar_one_or_none()

    # --- what workers do -----------------------------------------------------------------------------------------

    async def claim(self, session: AsyncSession, webhook_id: uuid.UUID, now: datetime, until: datetime) -> bool:
        """Takes (or extends) the lease on an active webhook that no other worker holds: one sender at a time."""
        statement = (
            update(Webhook)
            .where(
                Webhook.id == webhook_id,
                Webhook.active.is_(True),
                or_(Webhook.lease_until.is_(None), Webhook.lease_until < now),
            )
            .values(lease_until=until)
            .execution_options(synchronize_session=False)
        )
        return bool((await session.execute(statement)).rowcount)  # type: ignore[attr-defined]

    async def renew(self, session: AsyncSession, webhook_id: uuid.UUID, until: datetime | None) -> None:
        statement = (
            update(Webhook)
            .where(Webhook.id == webhook_id)
            .values(lease_until=until)
            .execution_options(synchronize_session=False)
        )
        await session.execute(statement)

    async def release(self, session: AsyncSession, webhook_id: uuid.UUID) -> None:
        await self.renew(session, webhook_id, None)

    async def oldest_pending(self, session: AsyncSession, webhook_id: uuid.UUID) -> WebhookDelivery | None:
        statement = (
            select(WebhookDelivery)
            .where(WebhookDelivery.webhook_id == webhook_id, WebhookDelivery.status == PENDING)
            .order_by(WebhookDelivery.id)
            .limit(1)
        )
        return (await session.execute(statement)).scalar_one_or_none()

    async def due_webhooks(self, session: AsyncSession, now: datetime, limit: int) -> list[uuid.UUID]:
        """Active, unleased webhooks whose oldest pending delivery is due (a newer one waits behind it)."""
        older = aliased(WebhookDelivery)
        statement = (
            select(WebhookDelivery.webhook_id)
            .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
            .where(
                WebhookDelivery.status == PENDING,
                WebhookDelivery.next_attempt_at <= now,
                Webhook.active.is_(True),
                or_(Webhook.lease_until.is_(None), Webhook.lease_until < now),
                ~exists().where(
                    and_(
                        older.webhook_id == WebhookDelivery.webhook_id,
                        older.status == PENDING,
                        older.id < WebhookDelivery.id,
                    )
                ),
            )
            .limit(limit)
        )
        return list((await session.execute(statement)).scalars())


webhook_repository = WebhookRepository()
