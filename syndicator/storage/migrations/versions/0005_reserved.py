"""daily digests: per-day story fingerprint and e-mail state

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'digests',
        sa.Column('day', sa.String(length=10), nullable=False),
        sa.Column('fingerprint', sa.String(length=64), nullable=False),
        sa.Column('stories', sa.Integer(), nullable=False),
        sa.Column('updated', sa.DateTime(), nullable=False),
        sa.Column('email_status', sa.String(length=10), nullable=True),
        sa.Column('email_claimed_at', sa.DateTime(), nullable=True),
        sa.Column('email_sent_at', sa.DateTime(), nullable=True),
        sa.Column('email_recipients', sa.Text(), nullable=True),
        sa.Column('email_message_id', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('day'),
    )


def downgrade() -> None:
    op.drop_table('digests')
