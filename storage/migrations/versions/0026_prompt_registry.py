"""prompt registry: prompts, immutable versions and labels; the prompt each logged call rendered; prompt variants

Revision ID: 0026
Revises: 0025
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prompts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("name", name="uq_prompts_name"),
    )
    op.create_table(
        "prompt_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("prompt_id", sa.Integer, sa.ForeignKey("prompts.id"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("template", sa.Text),
        sa.Column("messages", sa.JSON),
        sa.Column("variables", sa.JSON, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("prompt_id", "version", name="uq_prompt_versions_version"),
    )
    op.create_table(
        "prompt_labels",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("prompt_id", sa.Integer, sa.ForeignKey("prompts.id"), nullable=False),
        sa.Column("label", sa.String(50), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("prompt_id", "label", name="uq_prompt_labels_label"),
    )
    op.add_column("request_log", sa.Column("prompt_name", sa.String(100)))
    op.add_column("request_log", sa.Column("prompt_version", sa.Integer))
    op.create_index("ix_request_log_prompt_created_at", "request_log",
                    ["prompt_name", "prompt_version", "created_at"])
    op.add_column("experiment_variants", sa.Column("prompt_ref", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("experiment_variants") as batch:  # SQLite rebuilds the table
        batch.drop_column("prompt_ref")
    op.drop_index("ix_request_log_prompt_created_at", "request_log")
    with op.batch_alter_table("request_log") as batch:
        batch.drop_column("prompt_version")
        batch.drop_column("prompt_name")
    op.drop_table("prompt_labels")
    op.drop_table("prompt_versions")
    op.drop_table("prompts")
