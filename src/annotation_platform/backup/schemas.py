from __future__ import annotations

from datetime import datetime

from pydantic import Field

from annotation_platform.core.schemas import Id, ReadModel


class BackupRead(ReadModel):
    id: Id
    backend: str = Field(description="`postgresql` (a pg_dump custom-format file) or `sqlite` (a database file).")
    filename: str = Field(description="The file's name in BACKUP_DIR.")
    size_bytes: int
    sha256: str = Field(description="SHA-256 of the file, hex; `annotation-platform backup verify` recomputes it.")
    job_id: Id | None = Field(description="The job that took it; null for `annotation-platform backup create`.")
    created_by: Id | None = Field(description="Who asked for it; null for scheduled and command-line backups.")
    created_at: datetime
