"""Full-ranking validation during training: HR@K and NDCG@K after every epoch."""

import math
from typing import Dict

import numpy as np
import tensorflow as tf

from trainer.encoder import PAD_ID
from trainer.model import INPUTS
from trainer.model import LABELS
from trainer.tasks import NO_LABEL


def hr_name(k: int) -> str:
  return f"val_HR@{k}"


def ndcg_name(k: int) -> str:
  return f"val_NDCG@{k}"


def target_ranks(scores: tf.Tensor, inputs: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
  """0-based rank of each target among the items outside the row's history.

  Args:
    scores: float [B, V], column j = vocabulary index j.
    inputs: int [B, L] model ids (vocabulary index + 1, 0 = padding): the history.
    targets: int [B] vocabulary indices (>= 0).

  Returns:
    int32 [B]: how many non-history items score strictly higher than the target.
  """
  targets = tf.cast(targets, tf.int32)
  target_scores = tf.gather(scores, targets, batch_dims=1)
  inputs = tf.cast(inputs, tf.int32)
  seen = tf.where(tf.not_equal(inputs, PAD_ID))               # [n, 2] (row, column)
  items = tf.gather_nd(inputs, seen) - 1
  indices = tf.stack([tf.cast(seen[:, 0], tf.int32), items], axis=1)
  masked = tf.tensor_scatter_nd_update(
      scores, indices, tf.fill(tf.shape(items), tf.constant(-math.inf, scores.dtype)))
  return tf.reduce_sum(tf.cast(masked > target_scores[:, tf.newaxis], tf.int32), axis=1)


class RankingValidation(tf.keras.callbacks.Callback):
  """Adds ``val_HR@k`` / ``val_NDCG@k`` to the logs of every ``every``-th epoch.

  ``dataset`` yields ``trainer.inputs`` evaluation batches (``training=False``:
  the target in the last column of ``labels``); the model needs ``score_all``
  (``NextItemModel``, ``RetrievalModel``).
  """

  def __init__(self, dataset: tf.data.Dataset, k: int = 10, every: int = 1):
    super().__init__()
    if k < 1 or every < 1:
      raise ValueError(f"k and every must be >= 1; got k={k}, every={every}")
    self.dataset = dataset
    self.k = k
    self.every = every
    self._ranks_fn = None

  def evaluate(self) -> Dict[str, float]:
    """{val_HR@k, val_NDCG@k} of the model now (0 when no row has a target)."""
    if self._ranks_fn is None:
      model = self.model

      @tf.function(reduce_retracing=True)
      def ranks_fn(batch):
        labels = tf.cast(batch[LABELS][:, -1], tf.int32)
        keep = tf.not_equal(labels, NO_LABEL)
        inputs = tf.boolean_mask(batch[INPUTS], keep)
        labels = tf.boolean_mask(labels, keep)
        return target_ranks(model.score_all(inputs), inputs, labels)

      self._ranks_fn = ranks_fn
    hits = ndcg = 0.0
    count = 0
    for batch in self.dataset:
      ranks = self._ranks_fn(batch).numpy()
      top = ranks < self.k
      hits += float(top.sum())
      ndcg += float((1.0 / np.log2(ranks[top] + 2.0)).sum())
      count += len(ranks)
    count = max(count, 1)
    return {hr_name(self.k): hits / count, ndcg_name(self.k): ndcg / count}

  def on_epoch_end(self, epoch, logs=None):
    if logs is None or (epoch + 1) % self.every:
      return
    logs.update(self.evaluate())
