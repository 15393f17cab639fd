"""tf.data input pipeline: transformed sequence examples -> model batches.

Batches are ``inputs`` (model ids, left-padded) and ``labels`` (index or -1), int32 [B, L].
"""

from typing import Mapping, Sequence, Tuple, Union

import tensorflow as tf

from trainer import features
from trainer.encoder import PAD_ID
from trainer.model import INPUTS
from trainer.model import LABELS
from trainer.tasks import NO_LABEL
SHUFFLE_BUFFER_SIZE = 1 << 17   # sequences; one Beauty/ML-1M epoch fits whole
PARSE_BATCH_SIZE = 1024         # serialized examples parsed per tf.io.parse_example
SORT_WINDOW_BATCHES = 64        # batches' worth of rows sorted by length together
# Batches made ahead of the model. A fixed number with tf.data's autotuning off: with it
# on, a Keras ``fit`` sometimes returned only at the autotuner's next wake-up, long after
# the epoch's last step (bench/quality/results/README.md, "Training speed"). Nothing else
# here is tuned.
PREFETCH_BATCHES = 2


def _batch_ragged(values, name: str) -> tf.RaggedTensor:
  """[B, None] int64 ragged from a SparseTensor, RaggedTensor or dense Tensor."""
  if isinstance(values, tf.SparseTensor):
    values = tf.RaggedTensor.from_sparse(values)
  elif not isinstance(values, tf.RaggedTensor):
    values = tf.convert_to_tensor(values)
    if values.shape.rank != 2:
      raise ValueError(f"{name} must be [batch, None]; got shape {values.shape}")
    values = tf.RaggedTensor.from_tensor(values)
  if values.shape.rank != 2:
    raise ValueError(f"{name} must be [batch, None]; got shape {values.shape}")
  return tf.cast(values, tf.int64)


def _batch_vector(values, name: str) -> tf.Tensor:
  """[B] int64 from a dense [B] / [B, 1] tensor or a one-value-per-row SparseTensor."""
  if isinstance(values, tf.SparseTensor):
    values = tf.sparse.to_dense(values)
  values = tf.convert_to_tensor(values)
  if values.shape.rank == 2:
    tf.debugging.assert_equal(
        tf.shape(values)[1], 1, message=f"{name} must hold exactly one value per example")
    values = values[:, 0]
  elif values.shape.rank != 1:
    raise ValueError(f"{name} must be [batch] (one value per example); got {values.shape}")
  return tf.cast(values, tf.int64)


def _check_indices(values, oov_index: int, name: str):
  """values (Tensor or RaggedTensor), after checking 0 <= values <= oov_index."""
  if isinstance(values, tf.RaggedTensor):
    return values.with_flat_values(_check_indices(values.flat_values, oov_index, name))
  checks = [
      tf.debugging.assert_non_negative(
          values, message=f"{name}: vocabulary indices must be >= 0"),
      tf.debugging.assert_less_equal(
          values, tf.constant(oov_index, values.dtype),
          message=f"{name}: vocabulary indices must be <= oov_index={oov_index}"),
  ]
  with tf.control_dependencies(checks):
    return tf.identity(values)


def _drop_oov(sequences: tf.RaggedTensor, oov_index: int) -> tf.RaggedTensor:
  return tf.ragged.boolean_mask(sequences, sequences < oov_index)


def _left_pad(rows: tf.RaggedTensor, length: int, pad_value: int) -> tf.Tensor:
  """Rows of at most ``length`` values -> int32 [B, length], right-aligned."""
  rows = tf.cast(rows, tf.int32)
  dense = rows.to_tensor(default_value=pad_value, shape=[None, length])
  reversed_rows = tf.reverse_sequence(dense, rows.row_lengths(), seq_axis=1, batch_axis=0)
  return tf.reverse(reversed_rows, axis=[1])


def _check_args(oov_index: int, max_seq_len: int):
  if oov_index < 1:
    raise ValueError(f"oov_index must be the catalogue size V >= 1, got {oov_index}")
  if max_seq_len < 1:
    raise ValueError(f"max_seq_len must be >= 1, got {max_seq_len}")


def _checked_batch(history_ids, target_id, oov_index: int,
                   max_seq_len: int) -> Tuple[tf.RaggedTensor, tf.Tensor]:
  """(history int64 [B, None], target int64 [B]) after checking every index and argument."""
  _check_args(oov_index, max_seq_len)
  history = _check_indices(_batch_ragged(history_ids, features.HISTORY_IDS),
                           oov_index, features.HISTORY_IDS)
  target = _check_indices(_batch_vector(target_id, features.TARGET_ID),
                          oov_index, features.TARGET_ID)
  return history, target


def _sequences(history_ids, target_id, oov_index: int, max_seq_len: int) -> tf.RaggedTensor:
  """``history ++ [target]`` per row, checked, without OOV entries: int64 [B, None]."""
  history, target = _checked_batch(history_ids, target_id, oov_index, max_seq_len)
  sequence = tf.concat([history, tf.RaggedTensor.from_tensor(target[:, tf.newaxis])], axis=1)
  return _drop_oov(sequence, oov_index)


def _last_position_labels(last: tf.Tensor, max_seq_len: int) -> tf.Tensor:
  """int32 [N, max_seq_len]: -1 everywhere except ``last`` [N] in the last column."""
  last = tf.cast(last, tf.int32)
  return tf.concat(
      [tf.fill(tf.stack([tf.shape(last)[0], max_seq_len - 1]), NO_LABEL), last[:, tf.newaxis]],
      axis=1)


def batch_training_pairs(history_ids, target_id, oov_index: int,
                         max_seq_len: int) -> Tuple[tf.Tensor, tf.Tensor]:
  """Batched ``training_pairs``: history [B, None] and target [B] -> two int32 [B, L]."""
  sequence = _sequences(history_ids, target_id, oov_index, max_seq_len)[:, -(max_seq_len + 1):]
  inputs = _left_pad(sequence[:, :-1] + 1, max_seq_len, PAD_ID)
  labels = _left_pad(sequence[:, 1:], max_seq_len, NO_LABEL)
  return inputs, labels


def batch_prefix_pairs(history_ids, target_id, oov_index: int,
                       max_seq_len: int) -> Tuple[tf.Tensor, tf.Tensor]:
  """Every prefix of ``history ++ [target]`` as its own example: [B] rows -> [N] rows.

  A sequence ``s`` of n items (OOV entries dropped) gives n - 1 rows, one per
  ``i = 1 .. n-1``: inputs ``s[max(0, i-L):i] + 1`` (the last ``max_seq_len``
  items before ``s[i]``, left-padded) and labels -1 except ``s[i]`` at the last
  position. These are the targets of ``batch_training_pairs``, each with a
  history that only reaches up to it, so a bidirectional encoder cannot see its
  target (as S3-Rec, FMLP-Rec and BSARec train).

  Returns:
    (inputs, labels), int32 [N, L], N = sum over rows of (items - 1).
  """
  sequence = _sequences(history_ids, target_id, oov_index, max_seq_len)
  lengths = sequence.row_lengths()
  # ends: i = 1 .. n-1 of every row, flattened; starts: the first item each prefix keeps.
  ends = tf.ragged.range(tf.ones_like(lengths), tf.maximum(lengths, 1)).flat_values
  row_starts = tf.repeat(sequence.row_starts(), tf.maximum(lengths - 1, 0))
  starts = tf.maximum(ends - max_seq_len, 0)
  flat = sequence.flat_values
  prefixes = tf.gather(flat, tf.ragged.range(row_starts + starts, row_starts + ends))
  inputs = _left_pad(prefixes + 1, max_seq_len, PAD_ID)
  return inputs, _last_position_labels(tf.gather(flat, row_starts + ends), max_seq_len)


def batch_eval_pairs(history_ids, target_id, oov_index: int,
                     max_seq_len: int) -> Tuple[tf.Tensor, tf.Tensor]:
  """Batched ``eval_pair``: history [B, None] and target [B] -> two int32 [B, L]."""
  history, target = _checked_batch(history_ids, target_id, oov_index, max_seq_len)
  history = _drop_oov(history, oov_index)[:, -max_seq_len:]
  inputs = _left_pad(history + 1, max_seq_len, PAD_ID)
  last = tf.where(target < oov_index, target, NO_LABEL)
  return inputs, _last_position_labels(last, max_seq_len)


def _single(history_ids) -> tf.RaggedTensor:
  if isinstance(history_ids, tf.SparseTensor):
    if history_ids.shape.rank != 1:
      raise ValueError(f"{features.HISTORY_IDS} must be 1-D for one example; "
                       f"got shape {history_ids.shape}")
    return tf.RaggedTensor.from_sparse(tf.sparse.expand_dims(history_ids, 0))
  history_ids = tf.convert_to_tensor(history_ids, tf.int64)
  if history_ids.shape.rank != 1:
    raise ValueError(f"{features.HISTORY_IDS} must be 1-D for one example; "
                     f"got shape {history_ids.shape}")
  return tf.RaggedTensor.from_tensor(history_ids[tf.newaxis])


def training_pairs(history_ids, target_id, oov_index: int,
                   max_seq_len: int) -> Tuple[tf.Tensor, tf.Tensor]:
  """Shifted next-item pairs for one example.

  The sequence ``s = history ++ [target]`` loses its OOV entries and keeps its
  last ``max_seq_len + 1`` items; ``inputs = s[:-1] + 1`` and ``labels = s[1:]``.

  Args:
    history_ids: int [n] (dense or 1-D SparseTensor) vocabulary indices, oldest first.
    target_id: int scalar vocabulary index.
    oov_index: V, the OOV bucket index (= catalogue size).
    max_seq_len: L.

  Returns:
    (inputs int32 [L] left-padded with 0, labels int32 [L] left-padded with -1).
  """
  inputs, labels = batch_training_pairs(
      _single(history_ids), tf.reshape(tf.cast(target_id, tf.int64), [1]),
      oov_index, max_seq_len)
  return inputs[0], labels[0]


def eval_pair(history_ids, target_id, oov_index: int,
              max_seq_len: int) -> Tuple[tf.Tensor, tf.Tensor]:
  """Evaluation pair for one example: predict ``target`` after the whole history.

  Returns:
    (inputs int32 [L]: the history without OOV entries, last L kept, + 1, left-padded
    with 0; labels int32 [L]: -1 everywhere except the last position, which holds
    ``target`` — or -1 as well when the target is OOV and cannot be scored).
  """
  inputs, labels = batch_eval_pairs(
      _single(history_ids), tf.reshape(tf.cast(target_id, tf.int64), [1]),
      oov_index, max_seq_len)
  return inputs[0], labels[0]


def _row_lengths(batch: Mapping[str, tf.Tensor]) -> tf.Tensor:
  """int32 [B]: positions from the first item or label to the end of each row."""
  inputs, labels = batch[INPUTS], batch[LABELS]
  used = tf.logical_or(tf.not_equal(inputs, PAD_ID), tf.not_equal(labels, NO_LABEL))
  length = tf.shape(inputs)[1]
  first = tf.argmax(tf.cast(used, tf.int32), axis=1, output_type=tf.int32)
  return tf.where(tf.reduce_any(used, axis=1), length - first, 0)


def _length_sorted_batches(batch_size: int):
  """A window of rows -> dataset of its batches, rows sorted by length (stable)."""

  def split(window: Mapping[str, tf.Tensor]) -> tf.data.Dataset:
    order = tf.argsort(_row_lengths(window), stable=True)
    window = {k: tf.gather(v, order) for k, v in window.items()}
    rows = tf.shape(order, out_type=tf.int64)[0]
    num_batches = (rows + batch_size - 1) // batch_size
    return tf.data.Dataset.range(num_batches).map(
        lambda i: {k: v[i * batch_size:(i + 1) * batch_size] for k, v in window.items()})

  return split


def _trim_to_longest(batch: Mapping[str, tf.Tensor]) -> dict:
  """Drops the leading columns that are padding in every row (keeps >= 1 column)."""
  longest = tf.maximum(tf.reduce_max(_row_lengths(batch)), 1)
  return {k: v[:, -longest:] for k, v in batch.items()}


def _files(file_pattern: Union[str, Sequence[str]]) -> list:
  patterns = [file_pattern] if isinstance(file_pattern, str) else list(file_pattern)
  files = sorted({f for pattern in patterns for f in tf.io.gfile.glob(pattern)})
  if not files:
    raise ValueError(f"No TFRecord files match {patterns}")
  return files


def make_dataset(file_pattern: Union[str, Sequence[str]],
                 transformed_feature_spec: Mapping[str, object],
                 oov_index: int, max_seq_len: int, batch_size: int, training: bool,
                 shuffle_seed: int = None, bucket_by_length: bool = True,
                 cache: bool = True, prefixes: bool = False) -> tf.data.Dataset:
  """Batches of {"inputs", "labels"} from GZIP TFRecords of transformed tf.Examples.

  Args:
    file_pattern: glob pattern(s) of the transformed split's files.
    transformed_feature_spec: ``TFTransformOutput.transformed_feature_spec()``;
      needs ``history_ids`` and ``target_id``.
    oov_index: V, the OOV bucket index (= catalogue size).
    max_seq_len: the encoder's ``EncoderConfig.max_seq_len`` (longer rows keep the end).
    batch_size: rows per batch (the run's ``TrainingSchedule.batch_size``).
    training: True: every position of ``history ++ [target]`` is a label, rows
      are shuffled (one pass per iteration; each iteration reshuffles). False:
      only the target is a label and nothing is shuffled (rows come in file
      order, or length-sorted within each window when ``bucket_by_length``).
    shuffle_seed: makes the shuffle order (of every epoch) reproducible.
    bucket_by_length: sort rows by length within windows of
      ``SORT_WINDOW_BATCHES * batch_size`` (shuffled) rows, cut the window into
      batches, shuffle the batches (training) and trim each to its longest row.
      With False, rows keep file/shuffle order and batches are [B, max_seq_len],
      so the encoder also works on every padding position (the saving on Beauty:
      bench/quality/results/HISTORY.md). Either way every row is in exactly one
      batch per pass; only each window's last batch is partial.
    cache: keep the parsed sequences in memory after the first pass.
    prefixes: (training only) every prefix of each sequence is a row whose last
      position is the one label (``batch_prefix_pairs``), instead of one row per
      sequence labelled at every position.

  Returns:
    tf.data.Dataset of dicts, ``inputs``/``labels`` int32 [B, L], L <= max_seq_len.
  """
  missing = [k for k in (features.HISTORY_IDS, features.TARGET_ID)
             if k not in transformed_feature_spec]
  if missing:
    raise ValueError(f"transformed_feature_spec lacks {missing}; "
                     f"has {sorted(transformed_feature_spec)}")
  spec = {k: transformed_feature_spec[k] for k in (features.HISTORY_IDS, features.TARGET_ID)}
  _check_args(oov_index, max_seq_len)
  if prefixes and not training:
    raise ValueError("prefixes=True expands training sequences; evaluation rows have one "
                     "target each (training=False)")
  pairs_fn = batch_eval_pairs
  if training:
    pairs_fn = batch_prefix_pairs if prefixes else batch_training_pairs

  def to_pairs(serialized):
    parsed = tf.io.parse_example(serialized, spec)
    inputs, labels = pairs_fn(parsed[features.HISTORY_IDS], parsed[features.TARGET_ID],
                              oov_index, max_seq_len)
    return {INPUTS: inputs, LABELS: labels}

  dataset = tf.data.TFRecordDataset(_files(file_pattern), compression_type="GZIP")
  dataset = dataset.batch(PARSE_BATCH_SIZE).map(to_pairs).unbatch()
  if cache:
    dataset = dataset.cache()
  if training:
    dataset = dataset.shuffle(SHUFFLE_BUFFER_SIZE, seed=shuffle_seed,
                              reshuffle_each_iteration=True)
  if bucket_by_length:
    dataset = dataset.batch(batch_size * SORT_WINDOW_BATCHES)
    dataset = dataset.flat_map(_length_sorted_batches(batch_size))
    if training:
      dataset = dataset.shuffle(SORT_WINDOW_BATCHES, seed=shuffle_seed,
                                reshuffle_each_iteration=True)
    dataset = dataset.map(_trim_to_longest)
  else:
    dataset = dataset.batch(batch_size)
  options = tf.data.Options()
  options.autotune.enabled = False
  return dataset.prefetch(PREFETCH_BATCHES).with_options(options)
