"""remote sources state: configured URL, last HTTP status, permanent-redirect streak, polling interval.

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('source_state', schema=None) as batch_op:
        batch_op.add_column(sa.Column('configured_url', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('last_status', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('redirect_target', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('redirect_count', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('interval_seconds', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('source_state', schema=None) as batch_op:
        batch_op.drop_column('interval_seconds')
        batch_op.drop_column('redirect_count')
        batch_op.drop_column('redirect_target')
        batch_op.drop_column('last_status')
        batch_op.drop_column('configured_url')
