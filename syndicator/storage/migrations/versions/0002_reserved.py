"""stories and near-duplicate index (issue: stories): article_bands, the persistent LSH index.

Articles stored before this revision get their bands on their next sync (``sync --full`` indexes them all).

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'article_bands',
        sa.Column('article_id', sa.String(length=32), nullable=False),
        sa.Column('band_no', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('band_key', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['article_id'], ['articles.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('article_id', 'band_no'),
    )
    with op.batch_alter_table('article_bands', schema=None) as batch_op:
        batch_op.create_index('ix_article_bands_key', ['band_key'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('article_bands', schema=None) as batch_op:
        batch_op.drop_index('ix_article_bands_key')
    op.drop_table('article_bands')
