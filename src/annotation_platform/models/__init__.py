"""Every ORM table, imported here so that `Base.metadata` is complete for Alembic and the tests."""

from annotation_platform.models.agreement import AgreementResult
from annotation_platform.models.annotation import Annotation
from annotation_platform.models.api_key import ApiKey
from annotation_platform.models.audit import AuditEvent
from annotation_platform.models.backup import Backup
from annotation_platform.models.base import Base
from annotation_platform.models.container import Container, ContainerSchemaVersion
from annotation_platform.models.history import AnnotationRevision, Change
from annotation_platform.models.item import Item
from annotation_platform.models.job import Job, JobError, JobKind, JobStatus
from annotation_platform.models.oauth import OAuthAccount
from annotation_platform.models.project import Membership, Project, Role
from annotation_platform.models.user import AuthSession, User
from annotation_platform.models.version import ProjectVersion
from annotation_platform.models.webhook import DeliveryStatus, Webhook, WebhookDelivery

__all__ = [
    "AgreementResult",
    "Annotation",
    "AnnotationRevision",
    "ApiKey",
    "AuditEvent",
    "AuthSession",
    "Backup",
    "Base",
    "Change",
    "Container",
    "ContainerSchemaVersion",
    "DeliveryStatus",
    "Item",
    "Job",
    "JobError",
    "JobKind",
    "JobStatus",
    "Membership",
    "OAuthAccount",
    "Project",
    "ProjectVersion",
    "Role",
    "User",
    "Webhook",
    "WebhookDelivery",
]
