"""Transformer building blocks for the sequence encoder: attention masks and blocks.

Shapes: ``B`` batch, ``L`` sequence length, ``d`` model width.
"""

import tensorflow as tf


def attention_mask(padding_mask: tf.Tensor, causal: bool) -> tf.Tensor:
  """Self-attention mask from a key-padding mask, optionally causal.

  ``mask[b, t, s]`` is True when query position ``t`` may attend to key position
  ``s``: ``s`` holds an item (``padding_mask[b, s]``) and, if ``causal``, ``s <= t``.
  A query row that would attend to nothing (a padding position of a left-padded
  sequence under the causal mask, or any row of an all-padding sequence) is
  allowed to attend to itself alone, so its softmax stays well defined (no NaN)
  and never mixes in other positions. Non-padding queries never see padding keys,
  so padding positions cannot affect item positions.

  Args:
    padding_mask: bool [B, L], True where the position holds an item.
    causal: if True, position ``t`` attends to positions ``<= t`` only.

  Returns:
    bool [B, L, L] (query, key), as ``tf.keras.layers.MultiHeadAttention`` expects.
  """
  padding_mask = tf.cast(padding_mask, tf.bool)
  length = tf.shape(padding_mask)[1]
  mask = tf.broadcast_to(padding_mask[:, tf.newaxis, :],
                         tf.stack([tf.shape(padding_mask)[0], length, length]))
  positions = tf.range(length)
  if causal:
    mask = tf.logical_and(mask, positions[:, tf.newaxis] >= positions[tf.newaxis, :])
  empty_row = tf.logical_not(tf.reduce_any(mask, axis=-1, keepdims=True))
  diagonal = tf.equal(positions[:, tf.newaxis], positions[tf.newaxis, :])
  return tf.logical_or(mask, tf.logical_and(empty_row, diagonal[tf.newaxis]))


class TransformerBlock(tf.keras.layers.Layer):
  """Pre-LN Transformer block: self-attention and point-wise feed-forward.

  ``x = x + Dropout(MHA(LN(x)))``; ``x = x + Dropout(FFN(LN(x)))`` with
  ``FFN = Dense(d) . Dropout . act . Dense(ff_dim)``. Normalising before each
  sub-layer follows SASRec's reference implementation (which also normalises the
  attention query first and ends the stack with a LayerNorm; the encoder applies
  that final LayerNorm). Pre-LN trains stably at lr 1e-3 without warm-up.
  """

  def __init__(self, embedding_dim: int, num_heads: int, ff_dim: int,
               dropout: float, activation: str = "gelu",
               layer_norm_epsilon: float = 1e-6, **kwargs):
    super().__init__(**kwargs)
    if embedding_dim % num_heads:
      raise ValueError(
          f"embedding_dim ({embedding_dim}) must be divisible by num_heads ({num_heads})")
    self.embedding_dim = embedding_dim
    self.num_heads = num_heads
    self.ff_dim = ff_dim
    self.dropout = dropout
    self.activation = activation
    self.layer_norm_epsilon = layer_norm_epsilon
    self.attention_norm = tf.keras.layers.LayerNormalization(
        epsilon=layer_norm_epsilon, name="attention_norm")
    self.attention = tf.keras.layers.MultiHeadAttention(
        num_heads=num_heads, key_dim=embedding_dim // num_heads, dropout=dropout,
        name="attention")
    self.attention_dropout = tf.keras.layers.Dropout(dropout)
    self.ff_norm = tf.keras.layers.LayerNormalization(
        epsilon=layer_norm_epsilon, name="ff_norm")
    self.ff_inner = tf.keras.layers.Dense(ff_dim, activation=activation, name="ff_inner")
    self.ff_inner_dropout = tf.keras.layers.Dropout(dropout)
    self.ff_outer = tf.keras.layers.Dense(embedding_dim, name="ff_outer")
    self.ff_dropout = tf.keras.layers.Dropout(dropout)

  @tf.autograph.experimental.do_not_convert
  def call(self, x: tf.Tensor, attention_mask: tf.Tensor, training=False) -> tf.Tensor:
    """x: float [B, L, d]; attention_mask: bool [B, L, L] (see ``attention_mask``).

    Returns float [B, L, d].
    """
    h = self.attention_norm(x)
    h = self.attention(h, h, attention_mask=attention_mask, training=training)
    x = x + self.attention_dropout(h, training=training)
    h = self.ff_inner(self.ff_norm(x))
    h = self.ff_outer(self.ff_inner_dropout(h, training=training))
    return x + self.ff_dropout(h, training=training)

  def get_config(self) -> dict:
    config = super().get_config()
    config.update(embedding_dim=self.embedding_dim, num_heads=self.num_heads,
                  ff_dim=self.ff_dim, dropout=self.dropout, activation=self.activation,
                  layer_norm_epsilon=self.layer_norm_epsilon)
    return config
