"""ItemAttributeTable and the transformed items-split reader."""

import numpy as np
import pytest
import tensorflow as tf

from trainer import features
from trainer.pretraining import item_attributes


def _write_items(path, rows):
  """rows: (item_index, [attribute ids]) pairs -> GZIP TFRecord of tf.Examples."""
  with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
    for index, attributes in rows:
      example = tf.train.Example(features=tf.train.Features(feature={
          features.ITEM_INDEX: tf.train.Feature(int64_list=tf.train.Int64List(value=[index])),
          features.ITEM_ATTRIBUTE_IDS: tf.train.Feature(
              int64_list=tf.train.Int64List(value=attributes)),
      }))
      writer.write(example.SerializeToString())


def test_reader_merges_rows_and_drops_oov_items_and_attributes(tmp_path):
  num_items, num_attributes = 4, 3
  _write_items(tmp_path / "a.gz", [(0, [2, 0, 2]), (1, [3]), (2, [1])])
  _write_items(tmp_path / "b.gz", [(2, [0]), (num_items, [1])])    # OOV item row
  table = item_attributes.read_item_attributes(str(tmp_path / "*.gz"), num_items,
                                               num_attributes)
  assert table.attribute_ids.to_list() == [[0, 2], [], [0, 1], []]
  assert table.num_items_with_attributes == 2
  np.testing.assert_array_equal(table.has_attributes([0, 1, 2, 3]), [True, False, True, False])


def test_reader_names_file_row_and_field_of_a_bad_index(tmp_path):
  _write_items(tmp_path / "items.gz", [(0, [0]), (1, [7])])
  with pytest.raises(ValueError, match=r"row 1: item_attribute_ids \[7\] outside \[0, 3\]"):
    item_attributes.read_item_attributes(str(tmp_path / "items.gz"), 4, 3)
  _write_items(tmp_path / "items.gz", [(9, [0])])
  with pytest.raises(ValueError, match=r"items.gz.*row 0: item_index=9 outside \[0, 4\]"):
    item_attributes.read_item_attributes(str(tmp_path / "items.gz"), 4, 3)
  with pytest.raises(ValueError, match="No transformed 'items' split files"):
    item_attributes.read_item_attributes(str(tmp_path / "missing*"), 4, 3)


def test_items_split_pattern_is_derived_from_the_train_split():
  assert item_attributes.items_split_pattern(["/x/Transform/transformed_examples/7/Split-train/*"]) \
      == "/x/Transform/transformed_examples/7/Split-items/*"
  with pytest.raises(ValueError, match="Cannot derive"):
    item_attributes.items_split_pattern("/x/train/*")


def test_multi_hot_and_mean_embeddings():
  table = item_attributes.ItemAttributeTable([[0, 2], [], [1]], num_attributes=3)
  np.testing.assert_array_equal(table.multi_hot(tf.constant([2, 0, 1, 0])),
                                [[0, 1, 0], [1, 0, 1], [0, 0, 0], [1, 0, 1]])
  embeddings = tf.constant([[1.0, 0.0], [0.0, 1.0], [3.0, 4.0]])
  np.testing.assert_allclose(table.mean_embeddings(embeddings), [[2.0, 2.0], [0, 0], [0, 1]])
  with pytest.raises(ValueError, match=r"item 0: attribute indices must be in \[0, 3\)"):
    item_attributes.ItemAttributeTable([[3]], num_attributes=3)


def test_mean_embeddings_gradient_spreads_each_item_equally_over_its_attributes():
  table = item_attributes.ItemAttributeTable([[0, 2], [], [1], [2]], num_attributes=3)
  embeddings = tf.Variable([[1.0, 0.0], [0.0, 1.0], [3.0, 4.0]])
  with tf.GradientTape() as tape:
    total = tf.reduce_sum(table.mean_embeddings(embeddings) * [[1.0], [5.0], [2.0], [3.0]])
  # Attribute 0: half of item 0; 1: all of item 2; 2: half of item 0 and all of item 3.
  np.testing.assert_allclose(tape.gradient(total, embeddings), [[0.5] * 2, [2.0] * 2,
                                                                [3.5] * 2])
