"""Sequence augmentations for self-supervised pre-training (tensor ops, deterministic).

Batches in and out are left-padded model ids; randomness comes only from a stateless ``seed``.
"""

from typing import Sequence, Tuple

import tensorflow as tf

PAD_ID = 0
NO_LABEL = -1


def _seeds(seed, num: int) -> tf.Tensor:
  """``num`` independent stateless seeds, int [num, 2], derived from ``seed``."""
  seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
  seed = tf.ensure_shape(tf.reshape(seed, [-1]), [2])
  return tf.random.split(seed, num)


def _ids(item_ids) -> tf.Tensor:
  item_ids = tf.cast(tf.convert_to_tensor(item_ids), tf.int32)
  return tf.ensure_shape(item_ids, [None, None])


def item_counts(item_ids) -> tf.Tensor:
  """int32 [B]: number of non-padding positions of each row."""
  return tf.math.count_nonzero(_ids(item_ids), axis=1, dtype=tf.int32)


def left_align(item_ids) -> tf.Tensor:
  """Moves each row's non-padding ids to the right end, keeping their order: int32 [B, L]."""
  item_ids = _ids(item_ids)
  order = tf.argsort(tf.cast(tf.not_equal(item_ids, PAD_ID), tf.int32), axis=1, stable=True)
  return tf.gather(item_ids, order, batch_dims=1)


def sequences_from_pairs(inputs, labels, max_seq_len: int) -> tf.Tensor:
  """Whole sequences from next-item pairs (``trainer.inputs`` batches).

  ``inputs`` holds ``s[:-1] + 1`` and ``labels`` holds ``s[1:]`` (vocabulary
  indices, -1 = none), both left-padded; training pairs label every position,
  evaluation pairs only the last. The result is ``s`` itself as model ids
  (its most recent ``max_seq_len`` items), left-padded. (A one-item sequence
  has no training pair, so its row comes back empty.)

  Args:
    inputs: int [B, L] model ids.
    labels: int [B, L] vocabulary indices or -1.
    max_seq_len: width cap of the result.

  Returns:
    int32 [B, min(L + 1, max_seq_len)].
  """
  inputs, labels = _ids(inputs), _ids(labels)
  inputs = tf.pad(inputs, [[0, 0], [1, 0]])
  labels = tf.pad(labels, [[0, 0], [1, 0]], constant_values=NO_LABEL)
  # Column j of labels follows column j of inputs, so the first input item
  # belongs one column left of the first label.
  shifted_inputs = tf.pad(inputs[:, 1:], [[0, 0], [0, 1]])
  sequence = tf.where(labels >= 0, labels + 1, shifted_inputs)
  # An unlabelled last position (OOV evaluation target) would leave a hole.
  return left_align(sequence)[:, -max_seq_len:]


def cloze_mask(item_ids, seed, mask_id: int, num_items: int, probability: float,
               random_fraction: float = 0.0,
               keep_fraction: float = 0.0) -> Tuple[tf.Tensor, tf.Tensor]:
  """BERT4Rec masking: choose positions, corrupt them, label them.

  Each item position is chosen independently with ``probability``; a non-empty
  row with no chosen position gets one chosen uniformly among its items. A chosen
  position becomes [MASK] (``mask_id``), or with ``random_fraction`` a uniformly
  random item, or with ``keep_fraction`` stays unchanged.

  Args:
    item_ids: int [B, L] model ids, items only (0 or 1..V).
    seed: int [2] stateless seed.
    mask_id: the [MASK] model id (V + 1).
    num_items: V.
    probability: chance that an item position is chosen.
    random_fraction, keep_fraction: shares of the chosen positions that get a
      random item / stay unchanged instead of [MASK].

  Returns:
    (masked_ids int32 [B, L]; labels int32 [B, L]: the original vocabulary index
    (model id - 1) at exactly the chosen positions, -1 elsewhere).
  """
  item_ids = _ids(item_ids)
  check = tf.debugging.assert_less_equal(
      item_ids, num_items,
      message=f"cloze_mask input must hold item ids 1..{num_items} or 0 (padding); "
              f"found [MASK] or larger ids")
  with tf.control_dependencies([check]):
    item_ids = tf.identity(item_ids)
  choose_seed, kind_seed, item_seed = tf.unstack(_seeds(seed, 3))
  shape = tf.shape(item_ids)
  is_item = tf.not_equal(item_ids, PAD_ID)
  u = tf.random.stateless_uniform(shape, choose_seed)
  chosen = tf.logical_and(u < probability, is_item)
  needs_one = tf.logical_and(tf.reduce_any(is_item, axis=1),
                             tf.logical_not(tf.reduce_any(chosen, axis=1)))
  fallback = tf.argmin(tf.where(is_item, u, 2.0), axis=1, output_type=tf.int32)
  fallback = tf.logical_and(tf.one_hot(fallback, shape[1], on_value=True, off_value=False),
                            needs_one[:, tf.newaxis])
  chosen = tf.logical_or(chosen, fallback)
  labels = tf.where(chosen, item_ids - 1, NO_LABEL)

  r = tf.random.stateless_uniform(shape, kind_seed)
  to_mask = tf.logical_and(chosen, r < 1.0 - random_fraction - keep_fraction)
  to_random = tf.logical_and(
      chosen, tf.logical_and(r >= 1.0 - random_fraction - keep_fraction,
                             r < 1.0 - keep_fraction))
  random_items = tf.random.stateless_uniform(
      shape, item_seed, minval=1, maxval=num_items + 1, dtype=tf.int32)
  masked = tf.where(to_mask, mask_id, tf.where(to_random, random_items, item_ids))
  return masked, labels


def _uniform_int_below(upper, seed) -> tf.Tensor:
  """int32 [B]: uniform draws in [0, upper) per row (upper int32 [B], >= 1)."""
  u = tf.random.stateless_uniform(tf.shape(upper), seed)
  upper_f = tf.cast(upper, tf.float32)
  return tf.minimum(tf.cast(tf.floor(u * upper_f), tf.int32), upper - 1)


def crop(item_ids, seed, ratio: float) -> tf.Tensor:
  """Keeps a random contiguous run of ``max(1, floor(ratio * n))`` items of each row.

  Order is kept and the run is re-left-padded to the input width; empty rows stay
  empty.

  Returns:
    int32 [B, L].
  """
  item_ids = _ids(item_ids)
  length = tf.shape(item_ids)[1]
  n = item_counts(item_ids)
  keep = tf.where(n > 0, tf.maximum(1, tf.cast(tf.floor(ratio * tf.cast(n, tf.float32)),
                                               tf.int32)), 0)
  keep = tf.minimum(keep, n)
  start = _uniform_int_below(n - keep + 1, _seeds(seed, 1)[0])   # in item order
  shift = (n - start - keep)[:, tf.newaxis]                     # newer items dropped
  columns = tf.range(length)[tf.newaxis, :]
  source = tf.clip_by_value(columns - shift, 0, length - 1)
  cropped = tf.gather(item_ids, source, batch_dims=1)
  return tf.where(columns >= length - keep[:, tf.newaxis], cropped, PAD_ID)


def mask_items(item_ids, seed, mask_id: int, ratio: float) -> tf.Tensor:
  """Sets exactly ``floor(ratio * n)`` random items of each row to [MASK]: int32 [B, L]."""
  item_ids = _ids(item_ids)
  is_item = tf.not_equal(item_ids, PAD_ID)
  n = item_counts(item_ids)
  count = tf.cast(tf.floor(ratio * tf.cast(n, tf.float32)), tf.int32)
  u = tf.random.stateless_uniform(tf.shape(item_ids), _seeds(seed, 1)[0])
  order = tf.argsort(tf.where(is_item, u, 2.0), axis=1, stable=True)
  rank = tf.argsort(order, axis=1, stable=True)
  chosen = tf.logical_and(rank < count[:, tf.newaxis], is_item)
  return tf.where(chosen, mask_id, item_ids)


def reorder(item_ids, seed, ratio: float) -> tf.Tensor:
  """Shuffles a random contiguous span of ``floor(ratio * n)`` items of each row.

  Items outside the span keep their column; the span's items are permuted among
  the span's columns.

  Returns:
    int32 [B, L].
  """
  item_ids = _ids(item_ids)
  length = tf.shape(item_ids)[1]
  n = item_counts(item_ids)
  span = tf.cast(tf.floor(ratio * tf.cast(n, tf.float32)), tf.int32)
  start_seed, shuffle_seed = tf.unstack(_seeds(seed, 2))
  first = length - n + _uniform_int_below(n - span + 1, start_seed)   # column
  first, span = first[:, tf.newaxis], span[:, tf.newaxis]
  columns = tf.range(length)[tf.newaxis, :]
  in_span = tf.logical_and(columns >= first, columns < first + span)
  # Sort keys: a column outside the span keeps its index; span columns get
  # random keys in [first - 0.5, first + span - 0.5), strictly between the
  # neighbouring outside columns, so sorting permutes only the span.
  u = tf.random.stateless_uniform(tf.shape(item_ids), shuffle_seed)
  keys = tf.where(in_span,
                  tf.cast(first, tf.float32) - 0.5 + u * tf.cast(span, tf.float32),
                  tf.cast(columns, tf.float32))
  order = tf.argsort(keys, axis=1, stable=True)
  return tf.gather(item_ids, order, batch_dims=1)


def random_augmentation(item_ids, seed, mask_id: int, augmentations: Sequence[str],
                        crop_ratio: float, item_mask_ratio: float,
                        reorder_ratio: float) -> tf.Tensor:
  """One augmentation per row, drawn uniformly from ``augmentations``: int32 [B, L].

  Args:
    augmentations: names among "crop", "mask", "reorder".
  """
  item_ids = _ids(item_ids)
  pick_seed, crop_seed, mask_seed, reorder_seed = tf.unstack(_seeds(seed, 4))
  options = []
  for name in augmentations:
    if name == "crop":
      options.append(crop(item_ids, crop_seed, crop_ratio))
    elif name == "mask":
      options.append(mask_items(item_ids, mask_seed, mask_id, item_mask_ratio))
    elif name == "reorder":
      options.append(reorder(item_ids, reorder_seed, reorder_ratio))
    else:
      raise ValueError(f"Unknown augmentation {name!r}; expected crop, mask or reorder")
  if len(options) == 1:
    return options[0]
  choice = tf.random.stateless_uniform(
      tf.shape(item_ids)[:1], pick_seed, minval=0, maxval=len(options), dtype=tf.int32)
  return _select(options, choice)


def _select(options, choice) -> tf.Tensor:
  """Row b of options[choice[b]]: int32 [B, L]."""
  result = options[0]
  for index, option in enumerate(options[1:], start=1):
    result = tf.where(tf.equal(choice, index)[:, tf.newaxis], option, result)
  return result
