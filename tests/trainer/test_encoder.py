"""Transformer encoder, next-item loss and model: masks, padding, loss values, learning, export."""

import numpy as np
import pytest
import tensorflow as tf

from trainer.config import EncoderConfig
from trainer.encoder import SequenceEncoder
from trainer.layers import attention_mask
from trainer.layers import causal_low_pass_matrix
from trainer.layers import low_pass_matrix
from trainer.model import NextItemModel
from trainer.tasks import NextItemTask
from trainer.tasks import softmax_cross_entropy_sum

NUM_ITEMS = 30


def _config(**overrides) -> EncoderConfig:
  values = dict(max_seq_len=8, embedding_dim=16, num_blocks=2, num_heads=2, ff_dim=32,
                dropout=0.0)
  values.update(overrides)
  return EncoderConfig(**values)


def _encoder(**overrides) -> SequenceEncoder:
  tf.keras.utils.set_random_seed(3)
  encoder = SequenceEncoder(NUM_ITEMS, _config(**overrides))
  encoder(tf.zeros([1, encoder.config.max_seq_len], tf.int32))
  return encoder


def test_attention_mask_is_causal_and_hides_padding_keys():
  mask = attention_mask(tf.constant([[False, True, True]]), causal=True).numpy()[0]
  np.testing.assert_array_equal(mask, [[True, False, False],    # pad query: itself only
                                       [False, True, False],
                                       [False, True, True]])
  both_ways = attention_mask(tf.constant([[False, True, True]]), causal=False).numpy()[0]
  np.testing.assert_array_equal(both_ways, [[False, True, True]] * 3)


def test_attention_mask_lets_rows_without_any_key_attend_to_themselves():
  mask = attention_mask(tf.constant([[False, False]]), causal=False).numpy()[0]
  np.testing.assert_array_equal(mask, np.eye(2, dtype=bool))


def test_causal_output_at_t_ignores_later_items_but_bidirectional_does_not():
  encoder = _encoder()
  a = tf.constant([[0, 0, 3, 4, 5, 6, 7, 8]])
  b = tf.constant([[0, 0, 3, 4, 5, 9, 10, 11]])   # differs after position 4
  causal_a, causal_b = encoder(a, causal=True).numpy(), encoder(b, causal=True).numpy()
  np.testing.assert_allclose(causal_a[:, :5], causal_b[:, :5], atol=1e-5)
  assert np.abs(causal_a[:, 5:] - causal_b[:, 5:]).max() > 1e-3
  full_a, full_b = encoder(a, causal=False).numpy(), encoder(b, causal=False).numpy()
  assert np.abs(full_a[:, 2:5] - full_b[:, 2:5]).max() > 1e-3


def test_low_pass_matrix_keeps_the_lowest_rfft_bins():
  x = np.random.default_rng(0).normal(size=[10, 3])
  spectrum = np.fft.rfft(x, axis=0, norm="ortho")
  spectrum[3:] = 0
  want = np.fft.irfft(spectrum, n=10, axis=0, norm="ortho")
  np.testing.assert_allclose(low_pass_matrix(10, 3) @ x, want, atol=1e-5)
  np.testing.assert_allclose(low_pass_matrix(10, 6) @ x, x, atol=1e-5)   # every bin kept
  with pytest.raises(ValueError, match="frequency_bins"):
    low_pass_matrix(10, 7)


def test_causal_low_pass_row_t_is_the_filter_of_the_prefix_at_its_last_position():
  n = 8
  x = np.random.default_rng(1).normal(size=[n, 4])
  causal = causal_low_pass_matrix(n, 3)
  assert np.allclose(np.triu(causal, 1), 0)
  for t in range(n):
    window = np.zeros_like(x)
    window[n - 1 - t:] = x[:t + 1]
    np.testing.assert_allclose((causal @ x)[t], (low_pass_matrix(n, 3) @ window)[-1], atol=1e-5)


def test_frequency_filter_keeps_causal_outputs_blind_to_later_items():
  encoder = _encoder(filter_weight=0.7)
  assert encoder.blocks[0].frequency_filter is not None
  a = tf.constant([[0, 0, 3, 4, 5, 6, 7, 8]])
  b = tf.constant([[0, 0, 3, 4, 5, 9, 10, 11]])
  causal_a, causal_b = encoder(a, causal=True).numpy(), encoder(b, causal=True).numpy()
  np.testing.assert_allclose(causal_a[:, :5], causal_b[:, :5], atol=1e-5)
  full_a, full_b = encoder(a, causal=False).numpy(), encoder(b, causal=False).numpy()
  assert np.abs(full_a[:, 2:5] - full_b[:, 2:5]).max() > 1e-3
  # The filter changes the encoding (alpha = 0.7 of the mixer).
  plain = _encoder()
  assert np.abs(plain(a, causal=True).numpy() - causal_a).max() > 1e-3


def test_model_config_validates_attention_and_filter():
  with pytest.raises(ValueError, match="attention"):
    _config(attention="sideways")
  with pytest.raises(ValueError, match="filter_weight"):
    _config(filter_weight=1.5)
  with pytest.raises(ValueError, match="frequency_bins"):
    _config(frequency_bins=6)   # max_seq_len 8 has 5 rfft bins


@pytest.mark.parametrize("causal,filter_weight", [(True, 0.0), (False, 0.0), (True, 0.7),
                                                  (False, 0.7)])
def test_item_positions_do_not_depend_on_extra_left_padding(causal, filter_weight):
  encoder = _encoder(filter_weight=filter_weight)
  items = [5, 1, 30, 7]
  short = encoder(tf.constant([items]), causal=causal).numpy()[0]
  padded = encoder(tf.constant([[0] * 4 + items]), causal=causal).numpy()[0]
  assert np.isfinite(padded).all() and np.isfinite(short).all()
  np.testing.assert_allclose(padded[4:], short, atol=1e-5)
  np.testing.assert_array_equal(padded[:4], 0.0)


@pytest.mark.parametrize("causal,filter_weight,num_blocks", [
    (True, 0.0, 2), (False, 0.0, 2), (True, 0.7, 2), (False, 0.7, 2), (False, 0.0, 1)])
def test_last_only_equals_the_last_row_of_the_full_output(causal, filter_weight, num_blocks):
  encoder = _encoder(filter_weight=filter_weight, num_blocks=num_blocks,
                     attention="causal" if causal else "bidirectional")
  ids = tf.constant([[0, 0, 0, 5, 1, 30, 7, 2], [3, 4, 5, 6, 7, 8, 9, 10], [0] * 8])
  full = encoder(ids, causal=causal).numpy()
  last = encoder(ids, causal=causal, last_only=True).numpy()
  assert last.shape == (3, 1, 16)
  np.testing.assert_allclose(last, full[:, -1:], atol=1e-5)
  np.testing.assert_array_equal(last[2], 0.0)   # an empty history stays exactly zero
  np.testing.assert_allclose(encoder.last_hidden(ids).numpy(), full[:, -1], atol=1e-5)


@pytest.mark.parametrize("causal", [True, False])
def test_returning_attention_leaves_the_output_unchanged(causal):
  encoder = _encoder(filter_weight=0.5)
  ids = tf.constant([[0, 0, 0, 5, 1, 30, 7, 2], [3, 4, 5, 6, 7, 8, 9, 10]])
  output, attention = encoder(ids, causal=causal, return_attention=True)
  np.testing.assert_array_equal(output, encoder(ids, causal=causal))
  assert [a.shape for a in attention] == [(2, 2, 8, 8)] * 2   # per block: [B, heads, L, L]
  if causal:   # item positions see no later one
    later = np.triu(np.ones([8, 8], bool), k=1)
    np.testing.assert_array_equal(attention[0].numpy()[1][:, later], 0.0)
  last = encoder.last_attention(ids, causal=causal).numpy()
  assert last.shape == (2, 2, 2, 8)   # [B, blocks, heads, L]
  np.testing.assert_allclose(last, np.stack([a[:, :, -1] for a in attention], axis=1),
                             atol=1e-6)
  np.testing.assert_allclose(last.sum(axis=-1), 1.0, rtol=1e-5)
  np.testing.assert_array_equal(last[0, :, :, :3], 0.0)   # padding keys


def test_last_attention_without_blocks_is_empty():
  assert _encoder(num_blocks=0).last_attention(tf.constant([[1, 2]]), causal=True).shape == (
      1, 0, 2, 2)


def test_all_padding_and_mask_token_inputs_give_finite_outputs():
  encoder = _encoder()
  ids = tf.constant([[0] * 8, [0, 0, 0, 0, 0, 2, NUM_ITEMS + 1, 4]])
  for causal in (True, False):
    out = encoder(ids, training=True, causal=causal).numpy()
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out[0], 0.0)


def test_encoder_rejects_too_long_or_out_of_range_ids():
  encoder = _encoder()
  with pytest.raises(tf.errors.InvalidArgumentError, match="max_seq_len"):
    encoder(tf.ones([1, 9], tf.int32))
  with pytest.raises(tf.errors.InvalidArgumentError, match="model ids"):
    encoder(tf.constant([[1, NUM_ITEMS + 2]]))


def test_item_embeddings_are_table_rows_one_to_num_items():
  encoder = _encoder()
  table = encoder.item_table.embeddings.numpy()
  assert table.shape == (NUM_ITEMS + 2, 16)   # padding, items, [MASK]
  assert encoder.mask_id == NUM_ITEMS + 1
  np.testing.assert_array_equal(encoder.item_embeddings.numpy(), table[1:NUM_ITEMS + 1])


def _numpy_cross_entropy(hidden, labels, embeddings):
  losses = []
  for row, label in zip(hidden.reshape(-1, hidden.shape[-1]), labels.reshape(-1)):
    if label < 0:
      continue
    logits = embeddings.astype(np.float64) @ row.astype(np.float64)
    losses.append(np.log(np.exp(logits - logits.max()).sum()) + logits.max() - logits[label])
  return np.mean(losses)


def test_next_item_loss_is_mean_softmax_cross_entropy_over_labelled_positions():
  rng = np.random.default_rng(0)
  hidden = rng.normal(size=(2, 3, 4)).astype(np.float32)
  embeddings = rng.normal(size=(5, 4)).astype(np.float32)
  labels = np.array([[-1, 2, 0], [-1, -1, 4]], np.int32)
  loss = NextItemTask()(tf.constant(hidden), tf.constant(labels), tf.constant(embeddings))
  assert float(loss) == pytest.approx(_numpy_cross_entropy(hidden, labels, embeddings), rel=1e-5)
  # Hidden states at unlabelled positions do not matter.
  hidden[0, 0] = 100.0
  hidden[1, :2] = -7.0
  again = NextItemTask()(tf.constant(hidden), tf.constant(labels), tf.constant(embeddings))
  assert float(again) == pytest.approx(float(loss), rel=1e-6)


def test_next_item_loss_is_zero_without_labels():
  loss = NextItemTask()(tf.ones([2, 3, 4]), -tf.ones([2, 3], tf.int32), tf.ones([5, 4]))
  assert float(loss) == 0.0


def test_next_item_loss_rejects_labels_outside_catalogue():
  with pytest.raises(tf.errors.InvalidArgumentError, match="vocabulary indices"):
    NextItemTask()(tf.ones([1, 2, 4]), tf.constant([[0, 5]]), tf.ones([5, 4]))


@pytest.mark.parametrize("chunk_rows", [4, 256])   # 4: two chunks, the last one partial
@pytest.mark.parametrize("scale", [1.0, 30.0])      # 30: target probabilities underflow
def test_cross_entropy_value_and_gradients_match_tensorflow_reference(scale, chunk_rows):
  rng = np.random.default_rng(1)
  queries = tf.constant(rng.normal(size=(6, 8)).astype(np.float32) * scale)
  embeddings = tf.constant(rng.normal(size=(11, 8)).astype(np.float32))
  targets = tf.constant([0, 3, 3, 10, 7, 1])

  def ours(q, e, t):
    return softmax_cross_entropy_sum(q, e, t, chunk_rows=chunk_rows)

  def reference(q, e, t):
    return tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
        t, tf.matmul(q, e, transpose_b=True)))

  results = []
  for fn in (ours, reference):
    with tf.GradientTape() as tape:
      tape.watch([queries, embeddings])
      value = fn(queries, embeddings, targets)
      scaled = 2.0 * value   # a non-unit upstream gradient
    results.append([value.numpy()] + [
        g.numpy() for g in tape.gradient(scaled, [queries, embeddings])])
  for mine, theirs in zip(*results):
    np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-4)
  forward_only = softmax_cross_entropy_sum(queries, embeddings, targets, with_gradients=False,
                                           chunk_rows=chunk_rows)
  np.testing.assert_allclose(forward_only.numpy(), results[1][0], rtol=1e-5)
  if scale > 1:   # the loss really took the underflow path
    logits = tf.matmul(queries, embeddings, transpose_b=True)
    target_p = tf.gather(tf.nn.softmax(logits), targets, batch_dims=1)
    assert float(tf.reduce_min(target_p)) < 1e-30


def test_cross_entropy_of_no_rows_is_zero_with_zero_gradients():
  queries, embeddings = tf.zeros([0, 4]), tf.ones([5, 4])
  with tf.GradientTape() as tape:
    tape.watch(embeddings)
    value = softmax_cross_entropy_sum(queries, embeddings, tf.zeros([0], tf.int32))
  assert float(value) == 0.0
  np.testing.assert_array_equal(tape.gradient(value, embeddings).numpy(), 0.0)


def test_cross_entropy_in_a_traced_function_matches_eager():
  rng = np.random.default_rng(5)
  queries = tf.constant(rng.normal(size=(9, 4)).astype(np.float32))
  embeddings = tf.constant(rng.normal(size=(7, 4)).astype(np.float32))
  targets = tf.constant(rng.integers(0, 7, 9).astype(np.int32))

  def loss_and_grads(q, e):
    with tf.GradientTape() as tape:
      tape.watch([q, e])
      value = softmax_cross_entropy_sum(q, e, targets, chunk_rows=4)
    return [value] + tape.gradient(value, [q, e])

  traced = tf.function(loss_and_grads, input_signature=[
      tf.TensorSpec([None, 4], tf.float32), tf.TensorSpec([None, 4], tf.float32)])
  for eager, graph in zip(loss_and_grads(queries, embeddings), traced(queries, embeddings)):
    np.testing.assert_allclose(eager.numpy(), graph.numpy(), rtol=1e-5, atol=1e-6)


def _successor_sequences(rng, count, length):
  """Sequences of vocab indices where item i is always followed by (i + 1) % NUM_ITEMS."""
  starts = rng.integers(0, NUM_ITEMS, count)
  return (starts[:, None] + np.arange(length)[None]) % NUM_ITEMS


def test_training_lowers_loss_and_learns_the_successor_pattern():
  rng = np.random.default_rng(0)
  config = _config()
  tf.keras.utils.set_random_seed(0)
  train = _successor_sequences(rng, 256, config.max_seq_len + 1)
  data = {"inputs": (train[:, :-1] + 1).astype(np.int32), "labels": train[:, 1:].astype(np.int32)}
  # Left padding: blank out a random prefix of each row.
  for row, keep in enumerate(rng.integers(1, config.max_seq_len + 1, len(train))):
    data["inputs"][row, :-keep] = 0
    data["labels"][row, :-keep] = -1
  dataset = tf.data.Dataset.from_tensor_slices(data).batch(32)
  model = NextItemModel(NUM_ITEMS, config)
  model.compile(optimizer=tf.keras.optimizers.Adam(1e-2))
  history = model.fit(dataset, epochs=8, verbose=0).history["loss"]
  assert history[-1] < 0.5 * history[0], history

  held_out = _successor_sequences(np.random.default_rng(9), 50, 5)
  inputs = np.zeros([50, config.max_seq_len], np.int32)
  inputs[:, -5:] = held_out + 1
  predicted = np.argmax(model.score_all(tf.constant(inputs)).numpy(), axis=1)
  assert np.mean(predicted == (held_out[:, -1] + 1) % NUM_ITEMS) >= 0.9
  assert model.evaluate(dataset, verbose=0) < history[0]


def test_train_step_names_the_expected_batch_keys():
  model = NextItemModel(NUM_ITEMS, _config())
  with pytest.raises(ValueError, match="'inputs' and 'labels'"):
    model.train_step({"inputs": tf.ones([1, 8], tf.int32)})


def test_score_all_is_query_embedding_dot_item_embeddings():
  tf.keras.utils.set_random_seed(2)
  model = NextItemModel(NUM_ITEMS, _config())
  ids = tf.constant([[0, 0, 0, 0, 0, 3, 4, 5], [1, 2, 3, 4, 5, 6, 7, 8]])
  query = model.query_embedding(ids).numpy()
  assert query.shape == (2, 16)
  np.testing.assert_allclose(query, model.encoder(ids).numpy()[:, -1], atol=1e-6)
  np.testing.assert_allclose(model.score_all(ids).numpy(),
                             query @ model.item_embeddings.numpy().T, rtol=1e-5, atol=1e-5)


def test_model_saves_in_a_tf_module_and_reloaded_scores_match(tmp_path):
  tf.keras.utils.set_random_seed(4)
  model = NextItemModel(NUM_ITEMS, _config())

  class Serving(tf.Module):

    def __init__(self, model):
      super().__init__()
      self.model = model

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
    def score(self, item_ids):
      return self.model.score_all(item_ids)

  module = Serving(model)
  tf.saved_model.save(module, str(tmp_path / "saved"))
  loaded = tf.saved_model.load(str(tmp_path / "saved"))
  for ids in ([[0, 0, 4, 5, 6, 7, 8, 9]], [[3, 2, 1]]):
    np.testing.assert_allclose(loaded.score(tf.constant(ids)).numpy(),
                               model.score_all(tf.constant(ids)).numpy(), rtol=1e-5, atol=1e-5)
