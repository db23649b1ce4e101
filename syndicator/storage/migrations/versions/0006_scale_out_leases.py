"""scale-out leases (issue: scale-out): work claimed by exactly one worker with SKIP LOCKED and an expiry.

Rendered outputs already have their table (``outputs``, revision 0001); this adds the leases.

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'leases',
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('key', sa.String(length=500), nullable=False),
        sa.Column('due_at', sa.DateTime(), nullable=True),
        sa.Column('seq', sa.BigInteger(), nullable=False),
        sa.Column('holder', sa.String(length=200), nullable=True),
        sa.Column('token', sa.BigInteger(), nullable=False),
        sa.Column('claimed_at', sa.DateTime(), nullable=True),
        sa.Column('expires_at', sa.DateTime(), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('done_at', sa.DateTime(), nullable=True),
        sa.Column('done_by', sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint('kind', 'key'),
    )
    op.create_index('ix_leases_kind_due', 'leases', ['kind', 'due_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_leases_kind_due', table_name='leases')
    op.drop_table('leases')
