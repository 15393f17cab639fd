"""Input pipeline: next-item pairs from transformed examples; batched datasets from TFRecords."""

import collections

import numpy as np
import pytest
import tensorflow as tf

from trainer import features
from trainer import inputs
from trainer.config import EncoderConfig

V = 9   # catalogue size; 9 is the OOV index

SPEC = {
    features.USER_ID: tf.io.FixedLenFeature([], tf.string),
    features.HISTORY_IDS: tf.io.VarLenFeature(tf.int64),
    features.TARGET_ID: tf.io.FixedLenFeature([], tf.int64),
}


def _pair(fn, history, target, max_seq_len=4):
  model_inputs, labels = fn(history, target, oov_index=V, max_seq_len=max_seq_len)
  return model_inputs.numpy().tolist(), labels.numpy().tolist()


def test_training_pairs_shift_by_one_and_use_model_ids():
  assert _pair(inputs.training_pairs, [3, 0], 5) == ([0, 0, 4, 1], [-1, -1, 0, 5])


def test_training_pairs_drop_oov_and_keep_the_most_recent_items():
  # history ++ target = 1 9 2 3 9 4 5 6 -> without OOV 1 2 3 4 5 6 -> last 5: 2 3 4 5 6.
  assert _pair(inputs.training_pairs, [1, 9, 2, 3, 9, 4, 5], 6) == (
      [3, 4, 5, 6], [3, 4, 5, 6])


def test_training_pairs_of_a_lone_target_have_no_labels():
  assert _pair(inputs.training_pairs, [], 2) == ([0, 0, 0, 0], [-1, -1, -1, -1])
  assert _pair(inputs.training_pairs, [9, 9], 9) == ([0, 0, 0, 0], [-1, -1, -1, -1])


def test_training_pairs_accept_a_sparse_history():
  history = tf.sparse.from_dense(tf.constant([7, 8], tf.int64))
  assert _pair(inputs.training_pairs, history, 0) == ([0, 0, 8, 9], [-1, -1, 8, 0])


def test_eval_pair_labels_only_the_last_position_with_the_target():
  assert _pair(inputs.eval_pair, [1, 9, 2, 3, 4, 5], 6) == ([3, 4, 5, 6], [-1, -1, -1, 6])
  assert _pair(inputs.eval_pair, [2], 0) == ([0, 0, 0, 3], [-1, -1, -1, 0])


def test_eval_pair_of_an_oov_target_has_no_label():
  assert _pair(inputs.eval_pair, [2, 9], 9) == ([0, 0, 0, 3], [-1, -1, -1, -1])


@pytest.mark.parametrize("history,target,field", [
    ([1, 10], 2, features.HISTORY_IDS), ([1, -1], 2, features.HISTORY_IDS),
    ([1], 11, features.TARGET_ID)])
def test_indices_outside_the_vocabulary_are_rejected_naming_the_field(history, target, field):
  with pytest.raises(tf.errors.InvalidArgumentError, match=field):
    inputs.training_pairs(history, target, oov_index=V, max_seq_len=4)


def test_batch_pairs_match_single_example_pairs():
  histories = [[1, 2, 3, 4, 5, 6], [], [9, 4]]
  targets = [7, 0, 9]
  ragged = tf.ragged.constant(histories, dtype=tf.int64)
  for batch_fn, single_fn in ((inputs.batch_training_pairs, inputs.training_pairs),
                              (inputs.batch_eval_pairs, inputs.eval_pair)):
    batch_inputs, batch_labels = batch_fn(ragged.to_sparse(), tf.constant(targets, tf.int64),
                                          oov_index=V, max_seq_len=4)
    for row, (history, target) in enumerate(zip(histories, targets)):
      single = _pair(single_fn, history, target)
      assert (batch_inputs[row].numpy().tolist(), batch_labels[row].numpy().tolist()) == single


def test_prefix_pairs_make_one_row_per_target_each_seeing_only_its_past():
  inputs_, labels = inputs.batch_prefix_pairs(
      tf.ragged.constant([[0, 1, 2], [5], [3, 9, 7, 7, 7]], tf.int64),   # 9 = OOV, dropped
      tf.constant([3, 9, 1], tf.int64), oov_index=V, max_seq_len=3)
  assert inputs_.numpy().tolist() == [
      [0, 0, 1], [0, 1, 2], [1, 2, 3],      # s = 0 1 2 3
      # s = 5 (its target is OOV): no row
      [0, 0, 4], [0, 4, 8], [4, 8, 8], [8, 8, 8]]   # s = 3 7 7 7 1, last 3 items kept
  assert labels.numpy().tolist() == [
      [-1, -1, 1], [-1, -1, 2], [-1, -1, 3], [-1, -1, 7], [-1, -1, 7], [-1, -1, 7], [-1, -1, 1]]


def test_prefix_pairs_have_the_targets_of_training_pairs():
  histories, targets = [[1, 2, 3, 4, 5, 6], [], [8, 4]], [7, 0, 2]
  ragged, target = tf.ragged.constant(histories, dtype=tf.int64), tf.constant(targets, tf.int64)
  _, all_positions = inputs.batch_training_pairs(ragged, target, oov_index=V, max_seq_len=4)
  prefix_inputs, prefix_labels = inputs.batch_prefix_pairs(ragged, target, oov_index=V,
                                                           max_seq_len=4)
  want = sorted(int(x) for x in all_positions.numpy().ravel() if x >= 0)
  # all_positions keeps the last max_seq_len targets of a row; prefixes keep every one.
  assert sorted(prefix_labels.numpy()[:, -1].tolist()) == sorted(want + [2, 3])
  assert (prefix_labels.numpy()[:, :-1] == -1).all()
  # The row predicting s[6] = 7 holds the 4 items before it, as model ids (+1).
  assert prefix_inputs.numpy()[5].tolist() == [4, 5, 6, 7] and prefix_labels.numpy()[5, -1] == 7


def _write_records(path, rows):
  with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
    for user, history, target in rows:
      example = tf.train.Example(features=tf.train.Features(feature={
          features.USER_ID: tf.train.Feature(bytes_list=tf.train.BytesList(value=[user])),
          features.HISTORY_IDS: tf.train.Feature(int64_list=tf.train.Int64List(value=history)),
          features.TARGET_ID: tf.train.Feature(int64_list=tf.train.Int64List(value=[target])),
      }))
      writer.write(example.SerializeToString())


def _random_rows(rng, count):
  rows = []
  for user in range(count):
    history = rng.integers(0, V + 1, rng.integers(0, 9)).tolist()   # includes OOV (9)
    rows.append((b"u%d" % user, history, int(rng.integers(0, V + 1))))
  return rows


@pytest.fixture
def records(tmp_path):
  rng = np.random.default_rng(0)
  rows = _random_rows(rng, 70)
  _write_records(tmp_path / "part-0.gz", rows[:40])
  _write_records(tmp_path / "part-1.gz", rows[40:])
  return str(tmp_path / "part-*.gz"), rows


MAX_SEQ_LEN = 5
BATCH_SIZE = 8


def _dataset(pattern, training, spec=SPEC, **kwargs):
  return inputs.make_dataset(pattern, spec, V, MAX_SEQ_LEN, BATCH_SIZE, training=training,
                             **kwargs)


def _rows_of(dataset, max_seq_len):
  """Every row of every batch, left-padded back to max_seq_len, as (inputs, labels) tuples."""
  rows = []
  for batch in dataset:
    width = batch["inputs"].shape[1]
    assert batch["labels"].shape[1] == width <= max_seq_len
    for model_inputs, labels in zip(batch["inputs"].numpy(), batch["labels"].numpy()):
      rows.append((tuple([0] * (max_seq_len - width) + model_inputs.tolist()),
                   tuple([-1] * (max_seq_len - width) + labels.tolist())))
  return rows


def _expected(fn, rows, max_seq_len):
  return [tuple(tuple(x) for x in _pair(fn, history, target, max_seq_len))
          for _, history, target in rows]


@pytest.mark.parametrize("bucket_by_length", [True, False])
def test_training_dataset_yields_every_pair_once_per_epoch(records, bucket_by_length):
  pattern, rows = records
  dataset = _dataset(pattern, training=True, shuffle_seed=3, bucket_by_length=bucket_by_length)
  expected = collections.Counter(_expected(inputs.training_pairs, rows, MAX_SEQ_LEN))
  first, second = _rows_of(dataset, 5), _rows_of(dataset, 5)
  assert collections.Counter(first) == expected == collections.Counter(second)
  assert first != second   # reshuffled every epoch
  batch_sizes = [int(b["inputs"].shape[0]) for b in dataset]
  assert max(batch_sizes) == BATCH_SIZE and sum(batch_sizes) == len(rows)


def test_prefix_dataset_yields_every_prefix_once_per_epoch(records):
  pattern, rows = records
  dataset = _dataset(pattern, training=True, shuffle_seed=3, prefixes=True)
  want = []
  for _, history, target in rows:
    x, y = inputs.batch_prefix_pairs(tf.ragged.constant([history], tf.int64),
                                     tf.constant([target], tf.int64), V, MAX_SEQ_LEN)
    want += [(tuple(a), tuple(b)) for a, b in zip(x.numpy().tolist(), y.numpy().tolist())]
  assert collections.Counter(_rows_of(dataset, 5)) == collections.Counter(want)
  with pytest.raises(ValueError, match="prefixes=True"):
    _dataset(pattern, training=False, prefixes=True)


def test_training_dataset_order_is_reproducible_with_the_same_seed(records):
  pattern, _ = records
  runs = [_rows_of(_dataset(pattern, training=True, shuffle_seed=11), 5) for _ in range(2)]
  assert runs[0] == runs[1]


def test_length_bucketing_trims_batches_to_their_longest_row(records):
  pattern, rows = records
  bucketed = list(_dataset(pattern, training=True, shuffle_seed=3))
  widths = [b["inputs"].shape[1] for b in bucketed]
  assert min(widths) < MAX_SEQ_LEN
  for batch in bucketed:   # no all-padding leading column is kept
    used = (batch["inputs"].numpy()[:, 0] != 0) | (batch["labels"].numpy()[:, 0] != -1)
    assert used.any() or batch["inputs"].shape[1] == 1
  plain = list(_dataset(pattern, training=True, shuffle_seed=3, bucket_by_length=False))
  assert {b["inputs"].shape[1] for b in plain} == {MAX_SEQ_LEN}
  assert sum(b["inputs"].shape[0] * b["inputs"].shape[1] for b in bucketed) < sum(
      b["inputs"].shape[0] * b["inputs"].shape[1] for b in plain)


def test_eval_dataset_labels_each_target_once_in_file_order_without_bucketing(records):
  pattern, rows = records
  dataset = _dataset(pattern, training=False, bucket_by_length=False)
  assert _rows_of(dataset, 5) == _expected(inputs.eval_pair, rows, MAX_SEQ_LEN)
  bucketed = _dataset(pattern, training=False)
  assert collections.Counter(_rows_of(bucketed, 5)) == collections.Counter(
      _expected(inputs.eval_pair, rows, MAX_SEQ_LEN))
  assert all(b["inputs"].dtype == tf.int32 and b["labels"].dtype == tf.int32 for b in bucketed)


def test_make_dataset_reports_missing_files_and_features(tmp_path, records):
  pattern, _ = records
  with pytest.raises(ValueError, match="No TFRecord files match"):
    _dataset(str(tmp_path / "nothing-*.gz"), training=True)
  with pytest.raises(ValueError, match=features.TARGET_ID):
    _dataset(pattern, training=True, spec={features.HISTORY_IDS: SPEC[features.HISTORY_IDS]})


def test_make_dataset_feeds_the_model(records):
  from trainer.model import NextItemModel   # pylint: disable=g-import-not-at-top
  pattern, _ = records
  model = NextItemModel(V, EncoderConfig(max_seq_len=MAX_SEQ_LEN, embedding_dim=8,
                                         num_blocks=1, num_heads=1, ff_dim=8))
  model.compile(optimizer=tf.keras.optimizers.Adam(1e-3))
  history = model.fit(_dataset(pattern, training=True, shuffle_seed=1),
                      validation_data=_dataset(pattern, training=False),
                      epochs=1, verbose=0).history
  assert np.isfinite(history["loss"][0]) and np.isfinite(history["val_loss"][0])


def test_datasets_prefetch_a_fixed_number_of_batches_without_autotuning(records):
  # tf.data's autotuner delayed the end of Keras fit epochs to its next wake-up
  # (bench/quality/results/README.md, "Training speed"); every dataset turns it off.
  pattern, _ = records
  for training in (True, False):
    dataset = _dataset(pattern, training=training, shuffle_seed=3 if training else None)
    assert dataset.options().autotune.enabled is False
