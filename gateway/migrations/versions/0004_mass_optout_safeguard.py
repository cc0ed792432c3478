"""mass opt-out safeguard: campaign holds, provider opt-out signals, outbox index by campaign and sent time

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-26 22:10:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0004'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('campaign_holds',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('campaign_id', BIG_ID, nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('campaign_status', sa.String(length=16), nullable=False),
    sa.Column('opt_outs', sa.Integer(), nullable=False),
    sa.Column('sends', sa.Integer(), nullable=False),
    sa.Column('threshold', sa.Float(), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_by', sa.String(length=200), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('campaign_holds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_campaign_holds_campaign_id'), ['campaign_id'], unique=False)

    op.create_table('provider_opt_out_signals',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('campaign_id', BIG_ID, nullable=False),
    sa.Column('outbox_id', BIG_ID, nullable=False),
    sa.Column('hold_id', BIG_ID, nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.Column('scope', sa.String(length=100), nullable=False),
    sa.Column('provider', sa.String(length=50), nullable=False),
    sa.Column('provider_message_id', sa.String(length=200), nullable=True),
    sa.Column('error_code', sa.String(length=32), nullable=True),
    sa.Column('evidence', sa.JSON(), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('outbox_id')
    )
    with op.batch_alter_table('provider_opt_out_signals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_provider_opt_out_signals_hold_id'), ['hold_id'], unique=False)
        batch_op.create_index('ix_provider_opt_out_signals_window', ['campaign_id', 'recorded_at'], unique=False)

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_campaign_sent', ['campaign_id', 'sent_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_campaign_sent')

    with op.batch_alter_table('provider_opt_out_signals', schema=None) as batch_op:
        batch_op.drop_index('ix_provider_opt_out_signals_window')
        batch_op.drop_index(batch_op.f('ix_provider_opt_out_signals_hold_id'))

    op.drop_table('provider_opt_out_signals')
    with op.batch_alter_table('campaign_holds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_campaign_holds_campaign_id'))

    op.drop_table('campaign_holds')
