"""Masked-item prediction (Cloze, BERT4Rec) with a bidirectional encoder."""

import tensorflow as tf

from trainer.pretraining import objectives
from trainer.pretraining.batch import Objective
from trainer.pretraining.batch import PretrainingBatch
from trainer.tasks import NextItemTask


@objectives.register(objectives.MASKED_ITEM)
class MaskedItemObjective(Objective):
  """Predicts each masked item from the bidirectional hidden state at its position.

  Loss: full-softmax cross-entropy over the whole catalogue (logits = hidden @
  item_embeddings^T, tied with the encoder's input items), averaged over the
  masked positions of the batch (``PretrainingBatch.cloze``).
  """

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.softmax = NextItemTask(name="cloze_softmax")

  def call(self, batch: PretrainingBatch) -> tf.Tensor:
    """float scalar: mean cross-entropy over masked positions."""
    _, labels, hidden = batch.cloze()
    return self.softmax(hidden, labels, batch.item_embeddings(), excluded=batch.excluded)

  def terms(self, batch: PretrainingBatch) -> tf.Tensor:
    """The masked positions."""
    _, labels, _ = batch.cloze()
    return tf.reduce_sum(tf.cast(labels >= 0, tf.float32))
