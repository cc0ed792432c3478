"""contacts, lists and campaigns: campaigns, send pacing, outbox indexes by campaign and by recipient

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 10:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0002'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('campaigns',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('list_id', BIG_ID, nullable=True),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('category', sa.String(length=20), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('subject', sa.String(length=998), nullable=True),
    sa.Column('html_body', sa.Text(), nullable=True),
    sa.Column('sender', sa.String(length=320), nullable=True),
    sa.Column('provider', sa.String(length=50), nullable=False),
    sa.Column('scope', sa.String(length=100), nullable=False),
    sa.Column('topic', sa.String(length=100), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('segments', sa.Integer(), nullable=False),
    sa.Column('encoding', sa.String(length=16), nullable=False),
    sa.Column('footer_appended', sa.Boolean(), nullable=False),
    sa.Column('send_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('members', sa.Integer(), nullable=False),
    sa.Column('queued', sa.Integer(), nullable=False),
    sa.Column('excluded_opted_out', sa.Integer(), nullable=False),
    sa.Column('excluded_no_address', sa.Integer(), nullable=False),
    sa.Column('sent', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('blocked', sa.Integer(), nullable=False),
    sa.Column('fanout_cursor', BIG_ID, nullable=True),
    sa.Column('fanned_out_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claimed_by', sa.String(length=100), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['list_id'], ['contact_lists.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.create_index('ix_campaigns_due', ['status', 'send_at'], unique=False)

    op.create_table('send_pacing',
    sa.Column('provider', sa.String(length=50), nullable=False),
    sa.Column('sender', sa.String(length=320), nullable=False),
    sa.Column('next_slot_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('provider', 'sender')
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_campaign_status', ['campaign_id', 'status'], unique=False)
        batch_op.create_index('ix_outbox_recipient', ['recipient'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_recipient')
        batch_op.drop_index('ix_outbox_campaign_status')

    op.drop_table('send_pacing')
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_index('ix_campaigns_due')

    op.drop_table('campaigns')
