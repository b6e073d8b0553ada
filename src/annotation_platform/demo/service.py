"""A demo project: two chat rooms of a classroom debate, threaded by two annotators who partly disagree.

Passwords are random and printed once: the demo never ships known credentials.
"""

from __future__ import annotations

import random
import secrets

from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.annotation.schemas import AnnotationBulkRow
from annotation_platform.annotation.service import annotation_service
from annotation_platform.config import Settings
from annotation_platform.container.schemas import ContainerCreate
from annotation_platform.container.service import ContainerAccess, container_service
from annotation_platform.item.schemas import ItemCreate
from annotation_platform.item.service import item_service
from annotation_platform.member.service import member_service
from annotation_platform.models import Container, Project, Role, User
from annotation_platform.project.schemas import ProjectCreate
from annotation_platform.project.service import ProjectAccess, project_service
from annotation_platform.user.repository import user_repository
from annotation_platform.user.service import user_service

DEMO_DOMAIN = "demo.annotation-platform.invalid"
DEMO_USERS = (
    ("manager", Role.manager),
    ("ana", Role.annotator),
    ("joao", Role.annotator),
    ("rita", Role.reviewer),
)

OPENINGS = [
    "Na minha opinião a vacinação deveria ser um dever de todas as pessoas.",
    "Eu acho que deve ser um direito, ninguém pode ser obrigado.",
    'Concordo, mas "obrigatório" é forte demais.',
    "E quem não tem dinheiro para pagar a vacina?",
    "A imunidade coletiva só funciona se quase todos se vacinarem.",
    "Os pais devem decidir pelos filhos pequenos.",
    "Há pessoas que não podem ser vacinadas por razões de saúde.",
    "O governo poupa custos com programas obrigatórios.",
]
REPLIES = [
    "Concordo.",
    "Discordo, porquê?",
    "Boa questão!",
    "Isso depende do país.",
    "Tens fontes para isso?",
]


async def seed_demo(session: AsyncSession, settings: Settings) -> str:
    owner_email = f"owner@{DEMO_DOMAIN}"
    if await user_repository.email_exists(session, owner_email):
        return f"The demo is already loaded (accounts @{DEMO_DOMAIN}); nothing was changed."
    rng = random.Random(10)  # noqa: S311 - demo content, not security  # nosec B311
    credentials: list[tuple[str, str, str]] = []

    async def account(name: str) -> User:
        password = secrets.token_urlsafe(12)
        user = await user_service.register(
            session,
            settings,
            email=f"{name}@{DEMO_DOMAIN}",
            password=password,
            username=f"demo-{name}",
            is_verified=True,
        )
        credentials.append((user.email, password, name))
        return user

    owner = await account("owner")
    project = await project_service.create(
        session,
        user=owner,
        data=ProjectCreate(
            name="Demo: vaccination debates",
            description="Two chat rooms of a classroom debate, threaded by two annotators.",
            type="chat_disentanglement",
        ),
    )
    project_access = ProjectAccess(
        project=await session.get_one(Project, project.id), role=Role.owner, my_role=Role.owner
    )
    members: dict[str, User] = {}
    for name, role in DEMO_USERS:
        members[name] = await account(name)
        await member_service.put(session, access=project_access, user_id=members[name].id, role=role)

    for room in ("VAC_R01", "VAC_R02"):
        created = await container_service.create(
            session, access=project_access, data=ContainerCreate(name=room, type="chat_room")
        )
        container = await session.get_one(Container, created.id)
        access = ContainerAccess(container=container, role=Role.owner)
        turns = _turns(rng, room, 24)
        await item_service.bulk_create(session, access=access, items=turns)
        for annotator in ("ana", "joao"):
            rows = [
                AnnotationBulkRow(item_external_id=turn.external_id, type="thread", data={"thread_id": thread})
                for turn, thread in zip(turns, _threads(rng, turns, disagree=annotator == "joao"), strict=True)
            ]
            await annotation_service.bulk_create(session, access=access, user=members[annotator], rows=rows)

    lines = [
        f"Demo project {project.id} created with 2 chat rooms of 24 turns, threaded by ana and joao.",
        "Accounts (the passwords are shown only now):",
    ]
    lines += [f"  {email:<40} {password}   ({name})" for email, password, name in credentials]
    return "\n".join(lines)


def _turns(rng: random.Random, room: str, count: int) -> list[ItemCreate]:
    turns: list[ItemCreate] = []
    for index in range(1, count + 1):
        external_id = f"{room}_{index:03d}"
        replies_to = turns[rng.randrange(len(turns))].external_id if turns and rng.random() < 0.5 else None
        text = rng.choice(REPLIES) if replies_to else rng.choice(OPENINGS)
        turns.append(
            ItemCreate(
                external_id=external_id,
                content=text,
                metadata={"user_id": str(1900 + rng.randrange(40))},
                parent_external_id=replies_to,
            )
        )
    return turns


def _threads(rng: random.Random, turns: list[ItemCreate], *, disagree: bool) -> list[str]:
    thread_of: dict[str, str] = {}
    labels = []
    for turn in turns:
        parent = turn.parent_external_id
        label = thread_of[parent] if parent else str(len(set(thread_of.values())) + 1)
        if disagree and rng.random() < 0.2:
            label = str(int(label) + 1)
        thread_of[turn.external_id] = label
        labels.append(label)
    return labels
