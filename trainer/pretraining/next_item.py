"""Next-item prediction (SASRec) as a pre-training objective."""

import tensorflow as tf

from trainer.pretraining import objectives
from trainer.pretraining.batch import Objective
from trainer.pretraining.batch import PretrainingBatch
from trainer.tasks import NextItemTask


@objectives.register(objectives.NEXT_ITEM)
class NextItemObjective(Objective):
  """``trainer.tasks.NextItemTask`` on the causal pass: every labelled position
  predicts the item that follows it (full softmax over the catalogue)."""

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.task = NextItemTask(name="next_item_softmax")

  def call(self, batch: PretrainingBatch) -> tf.Tensor:
    """float scalar: mean cross-entropy over labelled positions."""
    return self.task(batch.next_item_hidden(), batch.labels, batch.item_embeddings(),
                     excluded=batch.excluded)

  def terms(self, batch: PretrainingBatch) -> tf.Tensor:
    """The labelled positions."""
    return tf.reduce_sum(tf.cast(batch.labels >= 0, tf.float32))
