"""Mixed-precision catalogue scoring: bfloat16 matmuls, float32 loss, close to float32."""

import numpy as np
import pytest
import tensorflow as tf

from trainer.config import EncoderConfig
from trainer.config import RetrievalConfig
from trainer.model import INPUTS
from trainer.model import LABELS
from trainer.pretraining.config import PretrainConfig
from trainer.pretraining.model import PretrainingModel
from trainer.retrieval import RetrievalModel
from trainer.tasks import NextItemTask
from trainer.tasks import excluded_items
from trainer.tasks import set_scoring_precision
from trainer.tasks import softmax_cross_entropy_sum

NUM_ITEMS = 40
# bfloat16 keeps 8 significant bits: operands are rounded by up to 2**-9 relative, so a
# loss of a few nats moves by about 1e-2 at most; float32 sums keep it from growing.
BF16_RTOL = 2e-2


def _loss_and_gradients(matmul_dtype):
  rng = np.random.default_rng(0)
  queries = tf.constant(rng.normal(size=[6, 8]), tf.float32)
  embeddings = tf.constant(rng.normal(size=[NUM_ITEMS, 8]), tf.float32)
  with tf.GradientTape() as tape:
    tape.watch([queries, embeddings])
    loss = softmax_cross_entropy_sum(queries, embeddings, tf.constant([0, 3, 3, 10, 7, 1]),
                                     chunk_rows=4, matmul_dtype=matmul_dtype)
  return [loss] + tape.gradient(loss, [queries, embeddings])


def test_bf16_matmuls_keep_the_loss_and_gradients_float32_and_close():
  reference = _loss_and_gradients(tf.float32)
  mixed = _loss_and_gradients(tf.bfloat16)
  for ours, theirs in zip(mixed, reference):
    assert ours.dtype == tf.float32
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=BF16_RTOL, atol=BF16_RTOL)
  # bfloat16 really ran: the loss is not bit-identical to float32's.
  assert mixed[0].numpy() != reference[0].numpy()


def _batches() -> tf.data.Dataset:
  rng = np.random.default_rng(1)
  inputs = rng.integers(1, NUM_ITEMS + 1, size=[64, 6]).astype(np.int32)
  labels = np.full([64, 6], -1, np.int32)
  labels[:, -1] = rng.integers(0, NUM_ITEMS, size=[64])
  return tf.data.Dataset.from_tensor_slices({INPUTS: inputs, LABELS: labels}).batch(16)


class _StepLosses(tf.keras.callbacks.Callback):

  def __init__(self):
    super().__init__()
    self.losses = []

  def on_train_batch_end(self, batch, logs=None):
    self.losses.append(float(logs["loss"]))


def _train_losses(precision: str):
  tf.keras.utils.set_random_seed(5)
  config = EncoderConfig(max_seq_len=6, embedding_dim=16, ff_dim=16, num_blocks=1,
                         dropout=0.0, filter_weight=0.5, frequency_bins=2)
  model = RetrievalModel(NUM_ITEMS, config, RetrievalConfig(use_item_attributes=False))
  set_scoring_precision(model, precision)
  model.compile(optimizer=tf.keras.optimizers.Adam(1e-2))
  steps = _StepLosses()
  model.fit(_batches(), epochs=2, verbose=0, callbacks=[steps])
  return steps.losses, model


def test_a_bf16_train_step_gives_losses_close_to_float32_on_a_tiny_model():
  reference, _ = _train_losses("float32")
  mixed, model = _train_losses("bfloat16")
  np.testing.assert_allclose(mixed, reference, rtol=BF16_RTOL)
  assert mixed != reference
  tasks = [m for m in model.submodules if isinstance(m, NextItemTask)]
  assert tasks and all(t.matmul_dtype == tf.bfloat16 for t in tasks)
  # Scores (the exported function's) stay float32.
  assert model.score_all(tf.constant([[0, 1, 2, 3, 4, 5]])).dtype == tf.float32
  assert all(w.dtype == tf.float32 for w in model.weights)


def test_scoring_precision_reaches_the_pretraining_objectives():
  model = PretrainingModel(NUM_ITEMS, EncoderConfig(max_seq_len=4, embedding_dim=8, ff_dim=8),
                           PretrainConfig(attribute_weight=0.0))
  set_scoring_precision(model, "bfloat16")
  assert [t.matmul_dtype for t in model.submodules if isinstance(t, NextItemTask)] == [
      tf.bfloat16]


def test_excluded_items_leave_the_softmax_and_get_no_gradient():
  rng = np.random.default_rng(2)
  queries = tf.constant(rng.normal(size=[6, 8]), tf.float32)
  embeddings = tf.constant(rng.normal(size=[NUM_ITEMS, 8]), tf.float32)
  targets = np.array([0, 3, 3, 10, 7, 1])
  excluded = np.zeros([NUM_ITEMS], bool)
  excluded[[2, 5, 11, 39]] = True
  kept = np.flatnonzero(~excluded)
  with tf.GradientTape() as tape:
    tape.watch([queries, embeddings])
    loss = softmax_cross_entropy_sum(queries, embeddings, tf.constant(targets), chunk_rows=4,
                                     excluded=tf.constant(excluded))
  d_queries, d_embeddings = tape.gradient(loss, [queries, embeddings])
  # The same as a softmax over the kept items only.
  with tf.GradientTape() as tape:
    tape.watch(queries)
    reference = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
        np.searchsorted(kept, targets),
        tf.matmul(queries, tf.gather(embeddings, kept), transpose_b=True)))
  assert float(loss) == pytest.approx(float(reference), rel=1e-5)
  np.testing.assert_allclose(d_queries, tape.gradient(reference, queries), atol=1e-5)
  assert not np.any(d_embeddings.numpy()[excluded])
  assert np.all(np.abs(d_embeddings.numpy()[targets]).sum(axis=1) > 0)


@pytest.mark.parametrize("representation, enabled, expected", [
    ("text", True, True), ("id+text", True, True), ("id", True, False),
    ("text", False, False)])
def test_untrained_items_are_excluded_for_text_items_unless_switched_off(
    representation, enabled, expected):
  config = EncoderConfig(item_representation=representation)
  untrained = np.array([False, True, False])
  excluded = excluded_items(untrained, config, enabled)
  assert (excluded is not None) == expected
  if expected:
    np.testing.assert_array_equal(excluded, untrained)
  assert excluded_items(np.zeros([3], bool), config, enabled) is None
  assert excluded_items(None, config, enabled) is None
