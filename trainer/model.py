"""Next-item Transformer (SASRec with full-softmax cross-entropy) as a Keras model."""

from typing import Optional

import numpy as np
import tensorflow as tf

from trainer import optimizers
from trainer.config import EncoderConfig
from trainer.encoder import SequenceEncoder
from trainer.tasks import NextItemTask

INPUTS = "inputs"
LABELS = "labels"


class NextItemModel(tf.keras.Model):
  """SequenceEncoder + NextItemTask; ``model(item_ids)`` is the [B, d] query embedding."""

  def __init__(self, num_items: int, config: EncoderConfig,
               item_vectors: Optional[np.ndarray] = None, **kwargs):
    """item_vectors: float [V, t] item text vectors, for text item representations."""
    super().__init__(**kwargs)
    self.num_items = num_items
    self.encoder_config = config
    self.encoder = SequenceEncoder(num_items, config, item_vectors, name="encoder")
    self.task = NextItemTask(name="next_item")
    self.loss_tracker = tf.keras.metrics.Mean(name="loss")
    # Create every variable now (cheap), so training, export and checkpoint
    # restore never depend on a first call made inside a traced function.
    self(tf.zeros([1, config.max_seq_len], tf.int32))

  @tf.autograph.experimental.do_not_convert
  def call(self, item_ids, training=False) -> tf.Tensor:
    """item_ids int [B, L] model ids -> float [B, d] hidden state at the last position.

    Read causally whatever ``EncoderConfig.attention`` says: this model trains every
    position on the item after it, which only a causal encoder can do without
    seeing that item.
    """
    return self.encoder(item_ids, training=training, causal=True, last_only=True)[:, 0]

  @tf.autograph.experimental.do_not_convert
  def query_embedding(self, item_ids) -> tf.Tensor:
    """float [B, d] user/query embedding; dot it with ``item_embeddings`` rows to score."""
    return self(item_ids, training=False)

  @tf.autograph.experimental.do_not_convert
  def query_attention(self, item_ids) -> tf.Tensor:
    """float [B, blocks, heads, L]: the (causal) query's attention from its last position."""
    return self.encoder.last_attention(item_ids, causal=True)

  @property
  def item_embeddings(self) -> tf.Tensor:
    """float [V, d]: row j is the item with vocabulary index j."""
    return self.encoder.item_embeddings

  @tf.autograph.experimental.do_not_convert
  def score_all(self, item_ids) -> tf.Tensor:
    """float [B, V] next-item logits; column j = vocabulary index j."""
    return tf.matmul(self.query_embedding(item_ids), self.item_embeddings, transpose_b=True)

  @property
  def metrics(self):
    return [self.loss_tracker]

  def _loss(self, data, training: bool):
    if not isinstance(data, dict) or INPUTS not in data or LABELS not in data:
      got = sorted(data) if isinstance(data, dict) else type(data).__name__
      raise ValueError(
          f"NextItemModel expects batches as dicts with '{INPUTS}' and '{LABELS}' "
          f"(int32 [B, L]); got {got}")
    hidden = self.encoder(data[INPUTS], training=training, causal=True)
    loss_sum, count = self.task.sum_and_count(
        hidden, data[LABELS], self.encoder.catalogue_embeddings(training=training),
        with_gradients=training)
    count = tf.cast(count, loss_sum.dtype)
    return tf.math.divide_no_nan(loss_sum, count), count

  def compile(self, optimizer="adam", **kwargs):
    """Keras compile; also creates the optimizer's slots now, so the first
    training step is traced once rather than twice (variable creation)."""
    super().compile(optimizer=optimizer, **kwargs)
    optimizers.build(self.optimizer, self.trainable_variables)

  # do_not_convert (here and on the other methods): the code is plain graph code.
  # AutoGraph skips modules named ``keras`` but not ``tf_keras``, so without it a
  # trace would transpile tf_keras's layer internals, which makes the first
  # training step's trace many times slower (bench/quality/results/HISTORY.md).
  @tf.autograph.experimental.do_not_convert
  def train_step(self, data):
    with tf.GradientTape() as tape:
      loss, count = self._loss(data, training=True)
      total = loss + tf.add_n(self.losses) if self.losses else loss
    variables = self.trainable_variables
    self.optimizer.apply_gradients(zip(tape.gradient(total, variables), variables))
    # Weighted by labelled positions: the epoch loss is the per-position mean.
    self.loss_tracker.update_state(loss, sample_weight=count)
    return {"loss": self.loss_tracker.result()}

  @tf.autograph.experimental.do_not_convert
  def test_step(self, data):
    loss, count = self._loss(data, training=False)
    self.loss_tracker.update_state(loss, sample_weight=count)
    return {"loss": self.loss_tracker.result()}

  def get_config(self) -> dict:
    return {"num_items": self.num_items, "config": self.encoder_config.to_json()}

  @classmethod
  def from_config(cls, config: dict) -> "NextItemModel":
    return cls(config["num_items"], EncoderConfig.from_json(config["config"]))
