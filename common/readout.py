"""Readout: the last encoder layer computed only for the position the classification head reads ([CLS]).

Why: a BERT sequence classifier reads one position of the last layer (the pooler takes hidden_states[:, 0]), yet
the layer computes all of them. Keys and values must still come from every position; from the attention's output
on, only row 0 is kept: the output projection, its LayerNorm and the feed-forward block. Per position a MiniLM-L6
layer does 4 x 384^2 (Q, K, V, O) + 2 x 384 x 1536 (FFN) = 1.77M multiply-adds; O and the FFN, 1.33M of them, now
run for one row: ~12.5% of the encoder's products (6 layers). While training with the fast dropout kernel the
attention computes row 0's query only, too (common/dropout.py: its Q projection and 1/128 of its score rows).
The [CLS] row is the same computation as before: same weights, same masks (masks_drawn_at_rows draws the skipped
rows' dropout masks too, so the random stream is unchanged), so a run gives the same numbers up to the rounding of
a differently shaped matrix product (tests/test_readout.py: fp32 logits and gradients equal to 1e-5 for every
method). Only a caller asking for the last layer's hidden states sees one row instead of all.
"""
from __future__ import annotations

import functools

import torch

from common.dropout import masks_drawn_at_rows

# Model types whose classifier reads the last layer at position 0 through this layer structure (BertLayer).
READOUT_MODEL_TYPES = ("bert",)


@functools.lru_cache(maxsize=None)
def _first_row_attention(base: type) -> type:
    class FirstRowAttention(base):
        """Self-attention over every position (keys, values, prefix tokens), output projection for row 0 only."""

        def forward(self, hidden_states, *args, **kwargs):
            self_outputs = self.self(hidden_states, *args, **kwargs)
            return (self.output(self_outputs[0][:, :1], hidden_states[:, :1]),) + tuple(self_outputs[1:])

    return FirstRowAttention


@functools.lru_cache(maxsize=None)
def _first_row_layer(base: type) -> type:
    class FirstRowLayer(base):
        """The layer's attention cut to row 0 (FirstRowAttention), its dropout masks drawn for every row."""

        first_row_only = True

        def forward(self, hidden_states, *args, **kwargs):
            with masks_drawn_at_rows(hidden_states.shape[1]):
                return super().forward(hidden_states, *args, **kwargs)

    return FirstRowLayer


def _last_bert_layer(model: torch.nn.Module):
    """The model's last BertLayer (peft and AdapterHub wrappers included), or None."""
    from transformers.models.bert.modeling_bert import BertLayer

    layers = [m for m in model.modules() if isinstance(m, BertLayer)]
    return layers[-1] if layers else None


def last_layer_for_cls_only(model: torch.nn.Module) -> bool:
    """Make the model's last BertLayer compute row 0 only (in place); False where the model has no BertLayer."""
    last = _last_bert_layer(model)
    if last is None:
        return False
    if getattr(last, "first_row_only", False):
        return True
    last.attention.__class__ = _first_row_attention(type(last.attention))
    last.__class__ = _first_row_layer(type(last))
    # Its queries too, where the attention honours it (common/dropout.py: BERT in training with the fast kernel;
    # elsewhere FirstRowAttention's cut alone): 1 of 128 rows of the layer's Q projection and attention maths.
    last.attention.self.query_rows = 1
    return True


def last_layer_label(model: torch.nn.Module) -> str:
    """What the record says: 'cls' when the last layer computes the head's row only, else 'full'."""
    return "cls" if getattr(_last_bert_layer(model), "first_row_only", False) else "full"
