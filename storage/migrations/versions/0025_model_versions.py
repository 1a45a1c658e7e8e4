"""model versions: each model's configurations with semver, hash and stage; the request log names the version

Revision ID: 0025
Revises: 0024
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("config_hash", sa.String(64), nullable=False),
        sa.Column("configuration", sa.JSON, nullable=False),
        sa.Column("stage", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("created_by", sa.String(20), nullable=False),
        sa.Column("restores", sa.String(32)),
        sa.Column("promoted_at", sa.DateTime),
        sa.UniqueConstraint("model", "version", name="uq_model_versions_model_version"),
    )
    op.add_column("request_log", sa.Column("model_version", sa.String(32)))


def downgrade() -> None:
    with op.batch_alter_table("request_log") as batch:  # SQLite rebuilds the table
        batch.drop_column("model_version")
    op.drop_table("model_versions")
