"""Reads and writes the prompt registry; each method is one unit of work.

Versions are numbered per prompt under a lock on the prompt's row, so concurrent pushes get 1, 2, 3 ... and
never collide; a label is moved by one upsert, so a reader sees the old version or the new one, never none.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select

from models.prompts.errors import PromptNotFoundError
from models.prompts.spec import DEFAULT_LABEL, PromptTarget
from models.prompts.tables import prompt_labels, prompt_versions, prompts
from storage.clock import utcnow
from storage.database import read, upsert_into, write


class PromptStore:
    """Prompts, their versions and labels on one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add_version(self, name: str, content: Mapping[str, Any], *, if_changed: bool = False) -> tuple[int, bool]:
        """Store `content` (the version columns) as the next version of `name`, creating the prompt if new.

        With `if_changed`, content equal to the latest version's adds nothing. Returns (version, created).
        """
        now = utcnow()
        with write(self.engine) as conn:
            conn.execute(upsert_into(conn, prompts).values(name=name, created_at=now)
                         .on_conflict_do_nothing(index_elements=["name"]))
            prompt_id = conn.execute(select(prompts.c.id).where(prompts.c.name == name).with_for_update()).scalar_one()
            latest = conn.execute(
                select(prompt_versions.c.version, prompt_versions.c.content_hash)
                .where(prompt_versions.c.prompt_id == prompt_id).order_by(prompt_versions.c.version.desc()).limit(1)
            ).first()
            if if_changed and latest is not None and latest.content_hash == content["content_hash"]:
                return latest.version, False
            version = (latest.version if latest is not None else 0) + 1
            conn.execute(prompt_versions.insert().values(prompt_id=prompt_id, version=version, created_at=now,
                                                         **content))
        return version, True

    def set_label(self, name: str, label: str, version: int) -> None:
        """Point `label` at an existing version in one statement; raises PromptNotFoundError."""
        with write(self.engine) as conn:
            prompt_id = _prompt_id(conn, name)
            _version_row(conn, prompt_id, name, version)
            statement = upsert_into(conn, prompt_labels).values(prompt_id=prompt_id, label=label, version=version,
                                                            updated_at=utcnow())
            conn.execute(statement.on_conflict_do_update(
                index_elements=["prompt_id", "label"],
                set_={"version": statement.excluded.version, "updated_at": statement.excluded.updated_at}))

    def describe(self, name: str) -> dict[str, Any]:
        """The prompt with every version (oldest first) and its labels; raises PromptNotFoundError."""
        with read(self.engine) as conn:
            prompt_id = _prompt_id(conn, name)
            versions = conn.execute(select(prompt_versions).where(prompt_versions.c.prompt_id == prompt_id)
                                    .order_by(prompt_versions.c.version)).mappings().all()
            labels = conn.execute(select(prompt_labels.c.label, prompt_labels.c.version)
                                  .where(prompt_labels.c.prompt_id == prompt_id)
                                  .order_by(prompt_labels.c.label)).all()
        return {"name": name, "versions": [_version_dict(row) for row in versions],
                "labels": {row.label: row.version for row in labels}}

    def resolve(self, target: PromptTarget) -> dict[str, Any]:
        """The version `target` names, read with its label in one unit of work; raises PromptNotFoundError."""
        with read(self.engine) as conn:
            prompt_id = _prompt_id(conn, target.name)
            version = target.version
            if version is None:
                label = target.label or DEFAULT_LABEL
                version = conn.execute(select(prompt_labels.c.version).where(
                    prompt_labels.c.prompt_id == prompt_id, prompt_labels.c.label == label)).scalar()
                if version is None:
                    raise PromptNotFoundError(f"Prompt {target.name!r} has no label {label!r}",
                                              details={"prompt": target.name, "label": label})
            return _version_dict(_version_row(conn, prompt_id, target.name, version))




def _prompt_id(conn: Connection, name: str) -> int:
    prompt_id = conn.execute(select(prompts.c.id).where(prompts.c.name == name)).scalar()
    if prompt_id is None:
        raise PromptNotFoundError(f"No prompt named {name!r}", details={"prompt": name})
    return int(prompt_id)


def _version_row(conn: Connection, prompt_id: int, name: str, version: int) -> Any:
    row = conn.execute(select(prompt_versions).where(prompt_versions.c.prompt_id == prompt_id,
                                                     prompt_versions.c.version == version)).mappings().first()
    if row is None:
        raise PromptNotFoundError(f"Prompt {name!r} has no version {version}",
                                  details={"prompt": name, "version": version})
    return row


def _version_dict(row: Mapping[Any, Any]) -> dict[str, Any]:
    data = {key: row[key] for key in ("version", "template", "messages", "variables")}
    if isinstance(row["created_at"], datetime):
        data["created_at"] = row["created_at"].isoformat() + "Z"
    return {key: value for key, value in data.items() if value is not None}
