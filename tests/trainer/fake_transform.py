"""A fake Transform output for Trainer run_fn tests: schema, vocabularies, transformed splits.

``write(root)`` gives V items ``item0 ..``, NUM_ATTRIBUTES attributes (item j has
attribute j % NUM_ATTRIBUTES), train / eval sequences of consecutive items and the items split;
``write(root, graph=True)`` adds the real transform graph, which exporting a model needs.
"""

import os

import numpy as np
import tensorflow as tf
from tensorflow_transform.tf_metadata import dataset_metadata
from tensorflow_transform.tf_metadata import metadata_io
from tensorflow_transform.tf_metadata import schema_utils

from tests.trainer import batches
from trainer import features

V = 20
NUM_ATTRIBUTES = 4
ITEM_VOCAB = [f"item{i}" for i in range(V)]


def _lines(path, lines):
  with open(path, "w") as f:
    f.write("".join(f"{line}\n" for line in lines))


def _example(**values):
  feature = {}
  for key, value in values.items():
    if isinstance(value, bytes):
      feature[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
    else:
      value = value if isinstance(value, list) else [value]
      feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=value))
  return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _write(path, examples):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with tf.io.TFRecordWriter(path, options="GZIP") as writer:
    for example in examples:
      writer.write(example)


def split_files(examples: str, split: str) -> list:
  """``fn_args.train_files``-style glob list of one transformed split."""
  return [os.path.join(examples, f"Split-{split}", "*")]


def _write_graph(transform_dir: str) -> None:
  """Analyses raw rows whose vocabularies come out as ITEM_VOCAB and ``attr0 ..``.

  Item j is seen V - j times and attribute a NUM_ATTRIBUTES - a times, so the
  frequency order of ``trainer.preprocessing`` is the index order.
  """
  import tempfile  # pylint: disable=g-import-not-at-top
  import tensorflow_transform.beam as tft_beam  # pylint: disable=g-import-not-at-top
  from trainer.preprocessing import preprocessing_fn  # pylint: disable=g-import-not-at-top
  raw_spec = {name: tf.io.FixedLenFeature([], tf.string) for name in (
      features.USER_ID, features.TARGET, features.ITEM_ID, features.TITLE)}
  raw_spec.update({name: tf.io.VarLenFeature(tf.string)
                   for name in (features.HISTORY, features.ITEM_ATTRIBUTES)})
  rows = [{features.USER_ID: b"", features.HISTORY: [], features.TARGET: b"",
           features.TITLE: b"", features.ITEM_ID: item.encode(),
           features.ITEM_ATTRIBUTES: [f"attr{a}".encode() for a in range(NUM_ATTRIBUTES)
                                      if j == 0 and a < NUM_ATTRIBUTES - copy]}
          for j, item in enumerate(ITEM_VOCAB) for copy in range(V - j)]
  metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(raw_spec))
  with tft_beam.Context(temp_dir=tempfile.mkdtemp()):
    transform_fn = (rows, metadata) | tft_beam.AnalyzeDataset(preprocessing_fn)
    _ = transform_fn | tft_beam.WriteTransformFn(transform_dir)


def write(root, graph: bool = False):
  """Writes under ``root`` (a pathlib.Path); returns (Transform output dir, examples dir).

  ``graph``: also write the transform graph (``transform_fn``), with the same
  vocabularies, as a Transform would (a slow step: it runs tf.Transform on Beam).
  """
  spec = {
      features.USER_ID: tf.io.FixedLenFeature([], tf.string),
      features.HISTORY_IDS: tf.io.VarLenFeature(tf.int64),
      features.TARGET_ID: tf.io.FixedLenFeature([], tf.int64),
      features.ITEM_INDEX: tf.io.FixedLenFeature([], tf.int64),
      features.ITEM_ATTRIBUTE_IDS: tf.io.VarLenFeature(tf.int64),
  }
  transform_dir = root / "transform_graph"
  if graph:
    _write_graph(str(transform_dir))
  metadata_io.write_metadata(
      dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec)),
      str(transform_dir / "transformed_metadata"))
  assets = transform_dir / "transform_fn" / "assets"
  os.makedirs(assets, exist_ok=True)
  _lines(assets / features.ITEM_VOCAB, ITEM_VOCAB)
  _lines(assets / features.ATTRIBUTE_VOCAB, [f"attr{a}" for a in range(NUM_ATTRIBUTES)])
  rng = np.random.default_rng(0)
  examples = root / "transformed_examples"
  for split, count in ((features.TRAIN_SPLIT, 48), (features.EVAL_SPLIT, 16)):
    rows = [_example(user_id=f"u{u}".encode(), history_ids=items[:-1], target_id=items[-1],
                     item_index=V, item_attribute_ids=[])
            for u, items in enumerate(batches.random_runs(count, V, 3, 7, rng))]
    _write(str(examples / f"Split-{split}" / "data.gz"), rows)
  items_rows = [_example(user_id=b"", history_ids=[], target_id=V, item_index=j,
                         item_attribute_ids=[j % NUM_ATTRIBUTES, NUM_ATTRIBUTES])
                for j in range(V)]
  _write(str(examples / f"Split-{features.ITEMS_SPLIT}" / "data.gz"), items_rows)
  return str(transform_dir), str(examples)
