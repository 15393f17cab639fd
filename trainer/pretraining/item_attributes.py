"""Item attribute sets: read from the transformed ``items`` split, used as tensors."""

import os
from typing import Sequence, Union

import numpy as np
import tensorflow as tf

from trainer import features

SPLIT_PREFIX = "Split-"
PARSE_BATCH_SIZE = 4096


class ItemAttributeTable:
  """Attribute sets of the V catalogue items; row j = vocabulary index j.

  Attributes:
    num_items: V.
    num_attributes: A (attribute vocabulary size without OOV).
    attribute_ids: tf.RaggedTensor int32 [V, None], sorted distinct indices < A.
  """

  def __init__(self, attribute_ids: Sequence[Sequence[int]], num_attributes: int):
    """attribute_ids: one sequence of attribute indices (0..A-1) per item, V rows."""
    if num_attributes < 1:
      raise ValueError(f"num_attributes must be >= 1, got {num_attributes}")
    rows = [sorted({int(a) for a in row}) for row in attribute_ids]
    if not rows:
      raise ValueError("ItemAttributeTable needs at least one item row")
    for item, row in enumerate(rows):
      if row and (row[0] < 0 or row[-1] >= num_attributes):
        raise ValueError(f"item {item}: attribute indices must be in [0, {num_attributes}); "
                         f"got {row}")
    self.num_items = len(rows)
    self.num_attributes = num_attributes
    flat = [a for row in rows for a in row]
    self.attribute_ids = tf.RaggedTensor.from_row_lengths(
        tf.constant(flat, tf.int32, shape=[len(flat)]),
        tf.constant([len(r) for r in rows], tf.int64, shape=[len(rows)]))
    self._counts = tf.constant([len(r) for r in rows], tf.int32)
    # [V, A] with 1 / (item's attribute count) at its attributes: mean_embeddings as
    # one sparse-dense matmul, whose gradient is far cheaper than a segment mean's.
    self._mean_weights = tf.SparseTensor(
        np.array([[item, a] for item, row in enumerate(rows) for a in row],
                 np.int64).reshape(-1, 2),
        tf.constant([1.0 / len(row) for row in rows for _ in row], tf.float32,
                    shape=[len(flat)]),
        [self.num_items, num_attributes])

  @property
  def num_items_with_attributes(self) -> int:
    return int(tf.math.count_nonzero(self._counts))

  def has_attributes(self, item_indices) -> tf.Tensor:
    """bool [N]: the items (vocabulary indices int [N]) have at least one attribute."""
    return tf.gather(self._counts, tf.cast(item_indices, tf.int32)) > 0

  def multi_hot(self, item_indices) -> tf.Tensor:
    """float32 [N, A]: 1 where item ``item_indices[n]`` has attribute ``a``."""
    rows = tf.gather(self.attribute_ids, tf.cast(item_indices, tf.int32))
    coords = tf.stack([tf.cast(rows.value_rowids(), tf.int32), rows.flat_values], axis=1)
    shape = tf.stack([tf.shape(item_indices, out_type=tf.int32)[0], self.num_attributes])
    return tf.scatter_nd(coords, tf.ones_like(rows.flat_values, tf.float32), shape)

  def mean_embeddings(self, attribute_embeddings: tf.Tensor) -> tf.Tensor:
    """float [V, d]: mean of each item's attribute embeddings (zeros if it has none).

    Args:
      attribute_embeddings: float [A, d], row a = attribute index a.
    """
    weights = self._mean_weights
    if attribute_embeddings.dtype != weights.dtype:
      weights = tf.SparseTensor(weights.indices, tf.cast(weights.values,
                                                         attribute_embeddings.dtype),
                                weights.dense_shape)
    return tf.sparse.sparse_dense_matmul(weights, attribute_embeddings)


def items_split_pattern(train_files: Union[str, Sequence[str]]) -> str:
  """Glob of the transformed ``items`` split next to the given train split files.

  TFX passes ``fn_args.train_files`` as ``["<examples uri>/Split-train/*"]``; the
  items split of the same artifact is ``<examples uri>/Split-items/*``.
  """
  pattern = train_files if isinstance(train_files, str) else list(train_files)[0]
  split_dir = os.path.dirname(pattern)
  if not os.path.basename(split_dir).startswith(SPLIT_PREFIX):
    raise ValueError(
        f"Cannot derive the '{features.ITEMS_SPLIT}' split from train file pattern {pattern!r}: "
        f"expected '<examples uri>/{SPLIT_PREFIX}{features.TRAIN_SPLIT}/*'")
  return os.path.join(os.path.dirname(split_dir), SPLIT_PREFIX + features.ITEMS_SPLIT, "*")


def read_item_attributes(file_pattern: Union[str, Sequence[str]], num_items: int,
                         num_attributes: int) -> ItemAttributeTable:
  """Reads the transformed ``items`` split (GZIP TFRecords of tf.Examples).

  Rows whose ``item_index`` is the OOV bucket (V) are skipped, OOV attributes
  (index A) dropped; an item listed twice gets the union of its attribute sets;
  catalogue items without a row have no attributes.

  Args:
    file_pattern: glob(s) of the transformed items split.
    num_items: V, the item vocabulary size.
    num_attributes: A, the attribute vocabulary size.

  Raises:
    ValueError: no file matches; an index outside its vocabulary range.
  """
  patterns = [file_pattern] if isinstance(file_pattern, str) else list(file_pattern)
  files = sorted({f for p in patterns for f in tf.io.gfile.glob(p)})
  if not files:
    raise ValueError(f"No transformed '{features.ITEMS_SPLIT}' split files match {patterns}")
  spec = {
      features.ITEM_INDEX: tf.io.FixedLenFeature([], tf.int64),
      features.ITEM_ATTRIBUTE_IDS: tf.io.VarLenFeature(tf.int64),
  }
  rows = [set() for _ in range(num_items)]
  dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(PARSE_BATCH_SIZE)
  seen = 0
  for serialized in dataset:
    try:
      parsed = tf.io.parse_example(serialized, spec)
    except tf.errors.InvalidArgumentError as e:
      raise ValueError(f"{files}: items split rows need an int64 scalar "
                       f"'{features.ITEM_INDEX}' and int64 list "
                       f"'{features.ITEM_ATTRIBUTE_IDS}': {e.message}") from e
    indices = parsed[features.ITEM_INDEX].numpy()
    attributes = tf.RaggedTensor.from_sparse(parsed[features.ITEM_ATTRIBUTE_IDS])
    for offset, (item, values) in enumerate(zip(indices, attributes.to_list())):
      row = seen + offset
      if item < 0 or item > num_items:
        raise ValueError(f"{files}: row {row}: {features.ITEM_INDEX}={item} outside "
                         f"[0, {num_items}] (vocabulary size {num_items}, OOV = {num_items})")
      bad = [a for a in values if a < 0 or a > num_attributes]
      if bad:
        raise ValueError(f"{files}: row {row}: {features.ITEM_ATTRIBUTE_IDS} {bad} outside "
                         f"[0, {num_attributes}] (OOV = {num_attributes})")
      if item < num_items:
        rows[item].update(a for a in values if a < num_attributes)
    seen += len(indices)
  return ItemAttributeTable([np.asarray(sorted(r), np.int64) for r in rows], num_attributes)
