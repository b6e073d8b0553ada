"""The one permission table: which project role may do what.

Roles are ordered (viewer < annotator < reviewer < manager < owner) and each action needs a minimum role.
Superusers may do everything. A caller with no role in the project gets 404 (it may not know the project
exists); a member whose role is too low gets 403.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from annotation_platform.core.errors import Forbidden, NotFound
from annotation_platform.models import Role, User

T = TypeVar("T")

ROLE_RANK = {role: rank for rank, role in enumerate(Role)}


class Action(StrEnum):
    read = "read"
    annotate = "annotate"
    adjudicate = "adjudicate"
    manage = "manage"
    own = "own"


MINIMUM_ROLE: dict[Action, Role] = {
    Action.read: Role.viewer,
    Action.annotate: Role.annotator,
    Action.adjudicate: Role.reviewer,
    Action.manage: Role.manager,
    Action.own: Role.owner,
}

ACTION_WORDS = {
    Action.read: "read this project",
    Action.annotate: "annotate in this project",
    Action.adjudicate: "change other people's annotations",
    Action.manage: "manage this project's structure and members",
    Action.own: "do this (owners only)",
}


def effective_role(role: str | None, user: User) -> Role | None:
    """The role the caller acts with: superusers act as owners everywhere."""
    if user.acts_as_superuser:
        return Role.owner
    return Role(role) if role is not None else None


def role_allows(role: Role | None, action: Action) -> bool:
    return role is not None and ROLE_RANK[role] >= ROLE_RANK[MINIMUM_ROLE[action]]


def authorize_found(found: tuple[T, str | None] | None, user: User, action: Action, resource: str) -> tuple[T, Role]:
    """A resource looked up together with the caller's role in its project, checked for `action`."""
    if found is None:
        raise NotFound(f"No such {resource}.")
    return found[0], authorize(found[1], user, action, resource)


def authorize(role: str | None, user: User, action: Action, resource: str) -> Role:
    """The caller's effective role, or the error they get: 404 outside the project, 403 inside it."""
    acting = effective_role(role, user)
    if acting is None:
        raise NotFound(f"No such {resource}.")
    if not role_allows(acting, action):
        raise Forbidden(f"Your role ({acting.value}) may not {ACTION_WORDS[action]}.")
    return acting
