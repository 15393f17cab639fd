"""SASRec-style sequence encoder: item ids in, one hidden state per position out.

Model ids, left padding and right-aligned positions: docs/architecture.md, "Ids and padding".
"""

import math
from typing import List, Optional

import numpy as np
import tensorflow as tf

from trainer.config import EncoderConfig
from trainer.layers import TransformerBlock
from trainer.layers import attention_mask
from trainer.layers import last_position
from trainer.layers import slice_axis
from trainer.text_adaptor import TextItemEmbedding

PAD_ID = 0
LAYER_NORM_EPSILON = 1e-6


def _initializer():
  # A fresh instance per table: one unseeded instance would repeat its values.
  return tf.keras.initializers.TruncatedNormal(stddev=0.02)


class SequenceEncoder(tf.keras.layers.Layer):
  """Item + position embeddings, ``num_blocks`` pre-LN Transformer blocks, final LN.

  ``x = Dropout(LN(sqrt(d) * item_emb + pos_emb))``, then the blocks (see
  ``trainer.layers.TransformerBlock``), then a final LayerNorm; padding
  positions are zeroed after every stage. The item representation (``embed_items``)
  is shared with the output layer (``item_embeddings``), as in SASRec.

  ``item_emb`` follows ``EncoderConfig.item_representation``: the item's row of the
  learned id table ``item_table`` ("id"), the text adaptor ``item_text`` over its
  frozen text vector ("text", ``trainer.text_adaptor``), or their sum ("id+text").
  """

  def __init__(self, num_items: int, config: EncoderConfig,
               item_vectors: Optional[np.ndarray] = None, **kwargs):
    """num_items: catalogue size V (vocabulary size without the OOV bucket);
    item_vectors: float [V, t], row j the text vector of vocabulary index j (text
    representations only; not part of ``get_config``)."""
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
    self.item_table = None
    if config.uses_item_ids:
      self.item_table = tf.keras.layers.Embedding(
          num_items + 2, dim, embeddings_initializer=_initializer(), name="item_embedding")
    self.item_text = _text_items(num_items, config, item_vectors)
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
    if self.item_table is not None and not self.item_table.built:
      self.item_table.build(None)
    self.position_table.build(None)
    super().build(input_shape)

  def embed_items(self, model_ids, training=False) -> tf.Tensor:
    """float [..., d]: the representation of items given as model ids (int [...]).

    The id embedding, the text adaptor's output or their sum
    (``EncoderConfig.item_representation``); the encoder's input and every scorer
    over the catalogue (``catalogue_embeddings``) take items from here.
    """
    parts = []
    if self.item_table is not None:
      parts.append(self._id_part(model_ids, training))
    if self.item_text is not None:
      parts.append(self.item_text(model_ids, training=training))
    return tf.add_n(parts) if len(parts) > 1 else parts[0]

  def _id_part(self, model_ids, training) -> tf.Tensor:
    """The id embeddings of ``model_ids``; in training with a text part, each one
    zeroed with probability ``EncoderConfig.id_dropout``."""
    ids = self.item_table(model_ids)
    rate = self.config.id_dropout
    if not training or rate <= 0 or self.item_text is None:
      return ids
    keep = tf.random.uniform(tf.shape(model_ids)) >= rate
    return ids * tf.cast(keep, ids.dtype)[..., tf.newaxis]

  def zero_item_ids(self, items: np.ndarray) -> None:
    """Sets the id embedding of ``items`` (bool [V] or vocabulary indices) to zero: an
    item with no trained id row is then represented by its text part alone."""
    items = np.asarray(items)
    indices = np.flatnonzero(items) if items.dtype == bool else items.astype(np.int64)
    if self.item_table is None or indices.size == 0:
      return
    if not self.item_table.built:
      self.item_table.build(None)
    table = self.item_table.embeddings
    rows = indices[:, None] + 1   # model id = vocabulary index + 1
    table.assign(tf.tensor_scatter_nd_update(
        table, rows, tf.zeros([len(rows), table.shape[1]], table.dtype)))

  def catalogue_embeddings(self, training=False) -> tf.Tensor:
    """float [V, d]: ``embed_items`` of every catalogue item; row j = vocabulary index j.

    ``training`` applies the text adaptor's dropout (text representations).
    """
    if self.item_text is None:   # the same rows as embed_items, without a gather
      return slice_axis(self.item_table.embeddings, 1, self.num_items + 1, axis=0)
    return self.embed_items(tf.range(1, self.num_items + 1), training=training)

  @property
  def item_embeddings(self) -> tf.Tensor:
    """float [V, d]: row j is the catalogue item with vocabulary index j (inference)."""
    return self.catalogue_embeddings(training=False)

  @property
  def trained_weights(self) -> List[tf.Variable]:
    """Every weight but the frozen text vectors (data aligned to this run's vocabulary)."""
    if self.item_text is None:
      return list(self.weights)
    return [w for w in self.weights if w is not self.item_text.vectors]

  @tf.autograph.experimental.do_not_convert
  def call(self, item_ids, training=False, causal: bool = True,
           last_only: bool = False, return_attention: bool = False):
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
      return_attention: also return each block's attention probabilities.

    Returns:
      float [B, L, d], or [B, 1, d] with ``last_only``; rows at padding
      positions are exactly zero. With ``return_attention``, also a list with one
      float [B, heads, L (or 1 in the last-only block), L] per block.
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

    positions = slice_axis(self.position_table.embeddings, self.config.max_seq_len - length,
                           self.config.max_seq_len, axis=0)
    x = self.embed_items(item_ids, training=training) * self._scale + tf.expand_dims(positions, 0)
    x = self.embedding_dropout(self.embedding_norm(x), training=training) * keep
    mask = attention_mask(padding_mask, causal)
    attention = []
    for i, block in enumerate(self.blocks):
      final = last_only and i == len(self.blocks) - 1
      x = block(x, mask, training=training, causal=causal, last_only=final,
                return_attention=return_attention)
      if return_attention:
        x, scores = x
        attention.append(scores)
      x = x * (keep[:, -1:] if final else keep)
    if last_only:   # a no-op after a last-only block; slices when there are no blocks
      x, keep = last_position(x), keep[:, -1:]
    x = self.final_norm(x) * keep
    return (x, attention) if return_attention else x

  @tf.autograph.experimental.do_not_convert
  def last_attention(self, item_ids, causal: bool) -> tf.Tensor:
    """float [B, blocks, heads, L]: how the last position (the query) attends over
    the positions of ``item_ids`` in each block (each row sums to 1; padding gets 0)."""
    _, attention = self(item_ids, training=False, causal=causal, last_only=True,
                        return_attention=True)
    if not attention:
      shape = tf.shape(item_ids)
      return tf.zeros([shape[0], 0, self.config.num_heads, shape[1]], self.compute_dtype)
    return tf.stack([scores[:, :, -1, :] for scores in attention], axis=1)

  @tf.autograph.experimental.do_not_convert
  def last_hidden(self, item_ids, training=False) -> tf.Tensor:
    """float [B, d]: hidden state at the last position (the user/query embedding).

    The history is read with ``EncoderConfig.attention`` (causal or bidirectional).
    """
    return tf.squeeze(self(item_ids, training=training, causal=self.config.causal_query,
                           last_only=True), axis=1)

  def get_config(self) -> dict:
    config = super().get_config()
    config.update(num_items=self.num_items, config=self.config.to_json())
    return config

  @classmethod
  def from_config(cls, config: dict) -> "SequenceEncoder":
    config = dict(config)
    encoder_config = EncoderConfig.from_json(config.pop("config"))
    return cls(config.pop("num_items"), encoder_config, **config)


def _text_items(num_items: int, config: EncoderConfig,
                item_vectors: Optional[np.ndarray]) -> Optional[TextItemEmbedding]:
  """The text adaptor of a text representation (None for "id"); checks ``item_vectors``."""
  if not config.uses_item_text:
    if item_vectors is not None:
      raise ValueError("item_vectors given, but EncoderConfig.item_representation is "
                       f"{config.item_representation!r}; use 'text' or 'id+text'")
    return None
  if item_vectors is None:
    raise ValueError(f"EncoderConfig.item_representation={config.item_representation!r} "
                     f"needs item_vectors: float [V={num_items}, t], row j the text vector "
                     "of vocabulary index j")
  if np.shape(item_vectors)[0] != num_items:
    raise ValueError(f"item_vectors has {np.shape(item_vectors)[0]} rows; the catalogue has "
                     f"{num_items} items")
  return TextItemEmbedding(item_vectors, config.embedding_dim, config.adaptor_experts,
                           config.adaptor_dropout, name="item_text")
