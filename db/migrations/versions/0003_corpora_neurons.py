"""tokens, corpora, documents, tokenized documents, neurons and neuron examples

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _unit_fk() -> sa.Column:
    return sa.Column("unit_id", sa.Integer(), sa.ForeignKey("units.id", ondelete="CASCADE"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "tokens",
        sa.Column("model_id", sa.Integer(), sa.ForeignKey("models.id"), primary_key=True),
        sa.Column("token_id", sa.Integer(), primary_key=True),
        sa.Column("text", sa.Text(), nullable=False),
    )
    op.create_table(
        "corpora",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False, unique=True),
        sa.Column("description", sa.Text(), nullable=False),
    )
    op.create_table(
        "documents",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("corpus_id", sa.Integer(), sa.ForeignKey("corpora.id"), nullable=False),
        sa.Column("doc_index", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.UniqueConstraint("corpus_id", "doc_index", name="uq_documents_index"),
    )
    op.create_index("ix_documents_corpus_id", "documents", ["corpus_id"])
    op.create_table(
        "tokenized_documents",
        sa.Column("id", sa.Integer(), primary_key=True),
        _unit_fk(),
        sa.Column("document_id", sa.Integer(), sa.ForeignKey("documents.id"), nullable=False),
        sa.Column("token_ids", sa.JSON(), nullable=False),
        sa.Column("offsets", sa.JSON(), nullable=False),
        sa.UniqueConstraint("unit_id", "document_id", name="uq_tokenized_documents"),
    )
    op.create_index("ix_tokenized_documents_unit_id", "tokenized_documents", ["unit_id"])
    op.create_table(
        "neurons",
        sa.Column("id", sa.Integer(), primary_key=True),
        _unit_fk(),
        sa.Column("layer", sa.Integer(), nullable=False),
        sa.Column("neuron", sa.Integer(), nullable=False),
        *(
            sa.Column(name, sa.Float(), nullable=False)
            for name in (
                "mean",
                "std",
                "skew",
                "kurtosis",
                "max",
                "frac_active",
                "hist_low",
                "hist_high",
            )
        ),  # fmt: skip
        sa.Column("histogram", sa.JSON(), nullable=False),
        *(
            sa.Column(name, sa.Float(), nullable=False)
            for name in (
                "w_in_norm",
                "w_out_norm",
                "vocab_mean",
                "vocab_var",
                "vocab_skew",
                "vocab_kurtosis",
            )
        ),  # fmt: skip
        sa.Column("top_tokens", sa.JSON(), nullable=False),
        sa.Column("bottom_tokens", sa.JSON(), nullable=False),
        sa.Column("top_token_share", sa.Float(), nullable=False),
        sa.Column("family", sa.String(20), nullable=True),
        sa.UniqueConstraint("unit_id", "layer", "neuron", name="uq_neurons_neuron"),
    )
    op.create_index("ix_neurons_unit_id", "neurons", ["unit_id"])
    op.create_index("ix_neurons_family", "neurons", ["family"])
    op.create_table(
        "neuron_examples",
        sa.Column("id", sa.Integer(), primary_key=True),
        _unit_fk(),
        sa.Column("layer", sa.Integer(), nullable=False),
        sa.Column("neuron", sa.Integer(), nullable=False),
        sa.Column("examples", sa.JSON(), nullable=False),
        sa.Column("context_acts", sa.LargeBinary(), nullable=False),
        sa.UniqueConstraint("unit_id", "layer", "neuron", name="uq_neuron_examples_neuron"),
    )
    op.create_index("ix_neuron_examples_unit_id", "neuron_examples", ["unit_id"])


def downgrade() -> None:
    for table in ("neuron_examples", "neurons", "tokenized_documents", "documents", "corpora", "tokens"):
        op.drop_table(table)
