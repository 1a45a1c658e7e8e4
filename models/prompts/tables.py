"""Tables of the prompt registry: prompts, their immutable versions, and the labels that point at versions."""

from __future__ import annotations

from sqlalchemy import JSON, Column, DateTime, ForeignKey, Integer, String, Table, Text, UniqueConstraint

from storage.database import metadata

prompts = Table(
    "prompts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("name", name="uq_prompts_name"),
)

# Written once and never updated: a version is what a logged call with that version rendered.
prompt_versions = Table(
    "prompt_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("prompt_id", Integer, ForeignKey("prompts.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("template", Text),  # either a template ...
    Column("messages", JSON),  # ... or [{role, content}] with templated contents
    Column("variables", JSON, nullable=False),
    Column("content_hash", String(64), nullable=False),  # so a push of unchanged content adds no version
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("prompt_id", "version", name="uq_prompt_versions_version"),
)

prompt_labels = Table(
    "prompt_labels",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("prompt_id", Integer, ForeignKey("prompts.id"), nullable=False),
    Column("label", String(50), nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    UniqueConstraint("prompt_id", "label", name="uq_prompt_labels_label"),
)
