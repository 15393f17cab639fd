"""tf.Transform preprocessing: vocabularies, OOV bucket, and that only analysed splits define the catalogue."""

import tempfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from trainer import features
from trainer.preprocessing import preprocessing_fn

RAW_SPEC = {
    features.USER_ID: tf.io.FixedLenFeature([], tf.string),
    features.HISTORY: tf.io.VarLenFeature(tf.string),
    features.TARGET: tf.io.FixedLenFeature([], tf.string),
    features.ITEM_ID: tf.io.FixedLenFeature([], tf.string),
    features.ITEM_ATTRIBUTES: tf.io.VarLenFeature(tf.string),
    features.TITLE: tf.io.FixedLenFeature([], tf.string),
}


def _seq(user, history, target):
  return {features.USER_ID: user, features.HISTORY: history, features.TARGET: target,
          features.ITEM_ID: b"", features.ITEM_ATTRIBUTES: [], features.TITLE: b""}


def _item(item, attributes):
  return {features.USER_ID: b"", features.HISTORY: [], features.TARGET: b"",
          features.ITEM_ID: item, features.ITEM_ATTRIBUTES: attributes, features.TITLE: b""}


@pytest.fixture(scope="module")
def transformed():
  analysed = [
      _seq(b"u1", [b"a", b"b", b"a"], b"c"),
      _seq(b"u2", [b"a"], b"b"),
      _item(b"a", [b"red"]), _item(b"b", [b"red", b"big"]),
      _item(b"c", []), _item(b"d", [b"blue"]),
  ]
  unseen = [_seq(b"u3", [b"a", b"zzz", b"d"], b"yyy")]
  metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(RAW_SPEC))
  with tft_beam.Context(temp_dir=tempfile.mkdtemp()):
    (out, _), transform_fn = (analysed, metadata) | tft_beam.AnalyzeAndTransformDataset(
        preprocessing_fn)
    unseen_out, _ = ((unseen, metadata), transform_fn) | tft_beam.TransformDataset()
  return out, unseen_out


def test_item_vocabulary_orders_by_frequency_and_covers_item_table(transformed):
  out, _ = transformed
  # Frequencies over analysed rows: a=4, b=3, c=2, d=1 (item rows count once).
  assert out[0][features.HISTORY_IDS].tolist() == [0, 1, 0]
  assert out[0][features.TARGET_ID] == 2
  assert [row[features.ITEM_INDEX] for row in out[2:]] == [0, 1, 2, 3]


def test_unknown_items_map_to_the_single_oov_bucket(transformed):
  _, unseen = transformed
  num_items = 4
  assert unseen[0][features.HISTORY_IDS].tolist() == [0, num_items, 3]
  assert unseen[0][features.TARGET_ID] == num_items


def test_attribute_vocabulary_ignores_empty_values(transformed):
  out, _ = transformed
  red, big, blue = (out[2][features.ITEM_ATTRIBUTE_IDS][0],
                    *out[3][features.ITEM_ATTRIBUTE_IDS][1:],
                    out[5][features.ITEM_ATTRIBUTE_IDS][0])
  assert red == 0  # most frequent
  assert sorted({int(red), int(big), int(blue)}) == [0, 1, 2]
  assert len(out[4][features.ITEM_ATTRIBUTE_IDS]) == 0
