"""Sequence augmentations of trainer.pretraining.augmentations (left-padded model ids)."""

import numpy as np
import pytest
import tensorflow as tf

from trainer import inputs
from trainer.pretraining import augmentations as aug

V = 40
MASK = V + 1
L = 12
SEED = (3, 7)


def _left_padded(rows, length=L):
  out = np.zeros([len(rows), length], np.int32)
  for i, row in enumerate(rows):
    if row:
      out[i, length - len(row):] = row
  return out


def _random_batch(num_rows=64, seed=0):
  rng = np.random.default_rng(seed)
  rows = [list(rng.integers(1, V + 1, size=rng.integers(0, L + 1))) for _ in range(num_rows)]
  rows[0] = []                 # an empty row
  rows[1] = [5]                # a single item
  rows[2] = list(range(1, L + 1))  # a full row
  return _left_padded(rows)


def _items(row):
  return [int(x) for x in row if x != 0]


def _is_left_padded(row):
  n = np.count_nonzero(row)
  return np.all(row[len(row) - n:] != 0) and np.all(row[:len(row) - n] == 0)


def test_cloze_labels_exactly_the_masked_positions():
  ids = _random_batch()
  masked, labels = aug.cloze_mask(ids, SEED, MASK, V, probability=0.3)
  masked, labels = masked.numpy(), labels.numpy()
  chosen = labels >= 0
  np.testing.assert_array_equal(masked == MASK, chosen)
  np.testing.assert_array_equal(labels[chosen], ids[chosen] - 1)
  np.testing.assert_array_equal(labels[~chosen], -1)
  np.testing.assert_array_equal(masked[~chosen], ids[~chosen])
  assert not np.any(chosen & (ids == 0)), "padding must never be masked"


def test_cloze_masks_at_least_one_item_per_non_empty_row():
  ids = _random_batch(num_rows=200)
  _, labels = aug.cloze_mask(ids, SEED, MASK, V, probability=0.01)
  per_row = np.sum(labels.numpy() >= 0, axis=1)
  non_empty = np.count_nonzero(ids, axis=1) > 0
  assert np.all(per_row[non_empty] >= 1)
  assert np.all(per_row[~non_empty] == 0)


def test_cloze_random_and_keep_fractions_change_only_chosen_positions():
  ids = _random_batch(num_rows=400, seed=1)
  masked, labels = aug.cloze_mask(ids, SEED, MASK, V, probability=0.5,
                                  random_fraction=0.2, keep_fraction=0.2)
  masked, labels = masked.numpy(), labels.numpy()
  chosen = labels >= 0
  np.testing.assert_array_equal(masked[~chosen], ids[~chosen])
  np.testing.assert_array_equal(labels[chosen], ids[chosen] - 1)
  share_mask = np.mean(masked[chosen] == MASK)
  share_kept = np.mean(masked[chosen] == ids[chosen])
  assert 0.5 < share_mask < 0.7, share_mask        # expected 0.6
  assert 0.15 < share_kept < 0.35, share_kept      # 0.2 kept + random hits on the same item
  assert np.all((masked[chosen] >= 1) & (masked[chosen] <= MASK))


def test_cloze_rejects_mask_tokens_in_the_input():
  ids = _left_padded([[1, MASK]])
  with pytest.raises(tf.errors.InvalidArgumentError, match="cloze_mask input"):
    aug.cloze_mask(ids, SEED, MASK, V, probability=0.5)


@pytest.mark.parametrize("ratio", [0.2, 0.6, 1.0])
def test_crop_is_contiguous_ordered_and_left_padded(ratio):
  ids = _random_batch()
  cropped = aug.crop(ids, SEED, ratio).numpy()
  for row, out in zip(ids, cropped):
    items, kept = _items(row), _items(out)
    assert _is_left_padded(out)
    expected_len = max(1, int(np.floor(ratio * len(items)))) if items else 0
    assert len(kept) == expected_len
    starts = [s for s in range(len(items) - len(kept) + 1) if items[s:s + len(kept)] == kept]
    assert starts, f"{kept} is not a contiguous run of {items}"


def test_mask_items_masks_exactly_the_ratio_and_nothing_else():
  ids = _random_batch()
  out = aug.mask_items(ids, SEED, MASK, 0.3).numpy()
  for row, new in zip(ids, out):
    n = np.count_nonzero(row)
    assert np.sum(new == MASK) == int(np.floor(0.3 * n))
    unchanged = new != MASK
    np.testing.assert_array_equal(new[unchanged], row[unchanged])


def test_reorder_permutes_only_within_one_contiguous_span():
  ids = _left_padded([list(range(1, L + 1))] * 50 + [list(range(10, 17))] * 50 + [[]])
  out = aug.reorder(ids, SEED, 0.5).numpy()
  shuffled_rows = 0
  for row, new in zip(ids, out):
    n = np.count_nonzero(row)
    span = int(np.floor(0.5 * n))
    assert _is_left_padded(new)
    changed = np.flatnonzero(new != row)
    if changed.size:
      shuffled_rows += 1
      assert changed[-1] - changed[0] < span, "changes must fit in one span"
      lo, hi = changed[0], changed[-1] + 1
      assert sorted(new[lo:hi]) == sorted(row[lo:hi]), "span must be a permutation"
    assert sorted(new) == sorted(row)
  assert shuffled_rows > 40


def test_augmentations_are_deterministic_given_the_seed():
  ids = _random_batch(num_rows=100)
  for fn in (lambda s: aug.cloze_mask(ids, s, MASK, V, 0.3, 0.1, 0.1)[0],
             lambda s: aug.crop(ids, s, 0.5),
             lambda s: aug.mask_items(ids, s, MASK, 0.4),
             lambda s: aug.reorder(ids, s, 0.5),
             lambda s: aug.random_augmentation(ids, s, MASK, ("crop", "mask", "reorder"),
                                               0.5, 0.4, 0.5)):
    first, again, other = fn((1, 2)).numpy(), fn((1, 2)).numpy(), fn((1, 3)).numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    traced = tf.function(fn)(tf.constant([1, 2], tf.int64)).numpy()
    np.testing.assert_array_equal(first, traced)


def test_random_augmentation_applies_one_of_the_augmentations_per_row():
  ids = _random_batch(num_rows=100)
  seed = tf.constant([5, 5], tf.int64)
  out = aug.random_augmentation(ids, seed, MASK, ("crop", "reorder"), 0.5, 0.3, 0.5).numpy()
  # random_augmentation derives each augmentation's seed the same way internally.
  _, crop_seed, _, reorder_seed = tf.unstack(tf.random.split(seed, 4))
  cropped = aug.crop(ids, crop_seed, 0.5).numpy()
  reordered = aug.reorder(ids, reorder_seed, 0.5).numpy()
  from_crop = np.all(out == cropped, axis=1)
  from_reorder = np.all(out == reordered, axis=1)
  assert np.all(from_crop | from_reorder)
  assert np.any(from_crop & ~from_reorder) and np.any(from_reorder & ~from_crop)


def test_sequences_from_pairs_recovers_the_whole_sequence():
  sequences = [[3, 1, 4, 1, 5], [9], [2, 6], list(range(20))]
  history = tf.ragged.constant([s[:-1] for s in sequences], dtype=tf.int64)
  target = tf.constant([s[-1] for s in sequences], tf.int64)
  for pairs in (inputs.batch_training_pairs, inputs.batch_eval_pairs):
    x, y = pairs(history, target, V, 8)
    full = aug.sequences_from_pairs(x, y, 8).numpy()
    for s, row in zip(sequences, full):
      if pairs is inputs.batch_training_pairs and len(s) == 1:
        # A one-item sequence has no training pair, so nothing to recover.
        assert _items(row) == []
        continue
      assert _items(row) == [i + 1 for i in s][-8:]
      assert _is_left_padded(row)


def test_sequences_from_pairs_keeps_rows_left_padded_when_the_target_is_oov():
  history = tf.ragged.constant([[1, 2]], dtype=tf.int64)
  x, y = inputs.batch_eval_pairs(history, tf.constant([V], tf.int64), V, 6)
  full = aug.sequences_from_pairs(x, y, 6).numpy()[0]
  assert _items(full) == [2, 3] and _is_left_padded(full)
