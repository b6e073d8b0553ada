"""Computed agreement, kept until the annotations it was computed from change."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from annotation_platform.core.types import utcnow
from annotation_platform.models.base import Base


class AgreementResult(Base):
    """One agreement report of one container, annotation type and set of options (`options`, e.g.
    `clustering;window=3`). `fingerprint` summarises the annotations it was computed from (count, newest change,
    sum of versions): when the annotations' fingerprint differs, the report is stale and computed again."""

    __tablename__ = "agreement_results"

    container_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("containers.id", ondelete="CASCADE"), primary_key=True)
    type: Mapped[str] = mapped_column(String(64), primary_key=True)
    options: Mapped[str] = mapped_column(String(128), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(128))
    result: Mapped[dict[str, Any]]
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)
