"""Contrastive sequence views (CL4SRec): InfoNCE between two augmentations."""

from typing import Optional

import tensorflow as tf

from trainer.pretraining import objectives
from trainer.pretraining.batch import Objective
from trainer.pretraining.batch import PretrainingBatch

_NEG_INF = -1e9


def nt_xent(view_a: tf.Tensor, view_b: tf.Tensor, temperature: float,
            valid: Optional[tf.Tensor] = None) -> tf.Tensor:
  """Normalised-temperature cross-entropy (SimCLR / CL4SRec) within the batch.

  The 2B representations are L2-normalised; for each one, the other view of the
  same sequence is the positive and the 2B - 2 views of the other sequences are
  the negatives: ``-log softmax(cos / temperature)[positive]``.

  Args:
    view_a, view_b: float [B, d], row b of each is a view of sequence b.
    temperature: softmax temperature (> 0).
    valid: optional bool [B]; invalid rows (e.g. empty sequences) are neither
      scored nor used as negatives.

  Returns:
    float scalar: mean over the 2 * (valid rows); 0 if there is none.
  """
  batch = tf.shape(view_a)[0]
  z = tf.math.l2_normalize(tf.cast(tf.concat([view_a, view_b], axis=0), tf.float32), axis=1)
  logits = tf.matmul(z, z, transpose_b=True) / temperature              # [2B, 2B]
  if valid is None:
    valid = tf.ones([batch], tf.bool)
  valid = tf.concat([valid, valid], axis=0)
  allowed = tf.logical_and(valid[tf.newaxis, :],
                           tf.logical_not(tf.eye(2 * batch, dtype=tf.bool)))
  logits = tf.where(allowed, logits, _NEG_INF)
  positives = tf.concat([tf.range(batch, 2 * batch), tf.range(batch)], axis=0)
  losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=positives, logits=logits)
  losses = tf.boolean_mask(losses, valid)
  return tf.math.divide_no_nan(tf.reduce_sum(losses), tf.cast(tf.size(losses), tf.float32))


@objectives.register(objectives.CONTRASTIVE)
class ContrastiveObjective(Objective):
  """NT-Xent between the last-position representations of two random views.

  Views come from ``PretrainingBatch.views`` (each row: crop, mask or reorder,
  see ``trainer.pretraining.augmentations``); representations are the encoder's
  query embeddings (``last_hidden``), the vector the fine-tuned model queries with.
  """

  def __init__(self, temperature: float, **kwargs):
    super().__init__(**kwargs)
    if temperature <= 0:
      raise ValueError(f"temperature must be > 0, got {temperature}")
    self.temperature = temperature

  @classmethod
  def from_pretrain_config(cls, config, embedding_dim, num_items, item_attributes, **kwargs):
    return cls(config.temperature, **kwargs)

  def call(self, batch: PretrainingBatch) -> tf.Tensor:
    """float scalar: NT-Xent over the non-empty sequences of the batch."""
    view_a, view_b = batch.view_representations()
    return nt_xent(view_a, view_b, self.temperature, valid=batch.nonempty)
