"""SASRec-style sequence encoder: item ids in, one hidden state per position out.

Model ids, left padding and right-aligned positions: docs/architecture.md, "Ids and padding".
"""

import math

import tensorflow as tf

from trainer.config import EncoderConfig
from trainer.layers import TransformerBlock
from trainer.layers import attention_mask

PAD_ID = 0
LAYER_NORM_EPSILON = 1e-6


def _initializer():
  # A fresh instance per table: one unseeded instance would repeat its values.
  return tf.keras.initializers.TruncatedNormal(stddev=0.02)


class SequenceEncoder(tf.keras.layers.Layer):
  """Item + position embeddings, ``num_blocks`` pre-LN Transformer blocks, final LN.

  ``x = Dropout(LN(sqrt(d) * item_emb + pos_emb))``, then the blocks (see
  ``trainer.layers.TransformerBlock``), then a final LayerNorm; padding
  positions are zeroed after every stage. The item table is shared with the
  output layer (``item_embeddings``), as in SASRec.
  """

  def __init__(self, num_items: int, config: EncoderConfig, **kwargs):
    """num_items: catalogue size V (vocabulary size without the OOV bucket)."""
    super().__init__(**kwargs)
    if num_items < 1:
      raise ValueError(f"num_items must be >= 1 (catalogue size), got {num_items}")
    if config.max_seq_len < 1:
      raise ValueError(f"EncoderConfig.max_seq_len must be >= 1, got {config.max_seq_len}")
    self.num_items = num_items
    self.config = config
    self.mask_id = num_items + 1
    dim = config.embedding_dim
    self._scale = math.sqrt(dim)
    self.item_table = tf.keras.layers.Embedding(
        num_items + 2, dim, embeddings_initializer=_initializer(), name="item_embedding")
    self.position_table = tf.keras.layers.Embedding(
        config.max_seq_len, dim, embeddings_initializer=_initializer(),
        name="position_embedding")
    self.embedding_norm = tf.keras.layers.LayerNormalization(
        epsilon=LAYER_NORM_EPSILON, name="embedding_norm")
    self.embedding_dropout = tf.keras.layers.Dropout(config.dropout)
    self.blocks = [
        TransformerBlock(dim, config.num_heads, config.ff_dim, config.dropout,
                         layer_norm_epsilon=LAYER_NORM_EPSILON,
                         filter_weight=config.filter_weight,
                         frequency_bins=config.frequency_bins,
                         max_seq_len=config.max_seq_len, name=f"block_{i}")
        for i in range(config.num_blocks)]
    self.final_norm = tf.keras.layers.LayerNormalization(
        epsilon=LAYER_NORM_EPSILON, name="final_norm")

  def build(self, input_shape):
    self.item_table.build(None)
    self.position_table.build(None)
    super().build(input_shape)

  @property
  def item_embeddings(self) -> tf.Tensor:
    """float [V, d]: row j is the catalogue item with vocabulary index j."""
    return self.item_table.embeddings[1:self.num_items + 1]

  @tf.autograph.experimental.do_not_convert
  def call(self, item_ids, training=False, causal: bool = True,
           last_only: bool = False) -> tf.Tensor:
    """Encodes left-padded model-id sequences.

    Args:
      item_ids: int [B, L], L <= max_seq_len; 0 = padding, 1..V items, V+1 [MASK].
      training: enables dropout.
      causal: True (SASRec) lets position t attend to (and, with a frequency
        filter, be filtered from) positions <= t only; False reads the sequence in
        both directions (masked-item pre-training, a bidirectional query tower).
      last_only: return the last position alone: the final block computes that
        one query row (the earlier blocks still compute every position, which it
        reads), the same numbers as ``[:, -1:]`` of the full output for about
        half the work of a two-block encoder.

    Returns:
      float [B, L, d], or [B, 1, d] with ``last_only``; rows at padding
      positions are exactly zero.
    """
    item_ids = tf.cast(item_ids, tf.int32)
    item_ids = tf.ensure_shape(item_ids, [None, None])
    length = tf.shape(item_ids)[1]
    checks = [
        tf.debugging.assert_less_equal(
            length, self.config.max_seq_len,
            message=f"item_ids has more positions than max_seq_len={self.config.max_seq_len}"),
        tf.debugging.assert_non_negative(
            item_ids, message="item_ids must be model ids >= 0 (0 = padding)"),
        tf.debugging.assert_less_equal(
            item_ids, self.mask_id,
            message=f"item_ids must be model ids <= {self.mask_id} "
                    f"(1..{self.num_items} items, {self.mask_id} = [MASK])"),
    ]
    with tf.control_dependencies(checks):
      item_ids = tf.identity(item_ids)
    padding_mask = tf.not_equal(item_ids, PAD_ID)
    keep = tf.cast(padding_mask, self.compute_dtype)[:, :, tf.newaxis]

    positions = self.position_table.embeddings[self.config.max_seq_len - length:]
    x = self.item_table(item_ids) * self._scale + positions[tf.newaxis]
    x = self.embedding_dropout(self.embedding_norm(x), training=training) * keep
    mask = attention_mask(padding_mask, causal)
    for i, block in enumerate(self.blocks):
      final = last_only and i == len(self.blocks) - 1
      x = block(x, mask, training=training, causal=causal, last_only=final)
      x = x * (keep[:, -1:] if final else keep)
    if last_only:   # a no-op after a last-only block; slices when there are no blocks
      x, keep = x[:, -1:], keep[:, -1:]
    return self.final_norm(x) * keep

  @tf.autograph.experimental.do_not_convert
  def last_hidden(self, item_ids, training=False) -> tf.Tensor:
    """float [B, d]: hidden state at the last position (the user/query embedding).

    The history is read with ``EncoderConfig.attention`` (causal or bidirectional).
    """
    return self(item_ids, training=training, causal=self.config.causal_query,
                last_only=True)[:, 0, :]

  def get_config(self) -> dict:
    config = super().get_config()
    config.update(num_items=self.num_items, config=self.config.to_json())
    return config

  @classmethod
  def from_config(cls, config: dict) -> "SequenceEncoder":
    config = dict(config)
    encoder_config = EncoderConfig.from_json(config.pop("config"))
    return cls(config.pop("num_items"), encoder_config, **config)
