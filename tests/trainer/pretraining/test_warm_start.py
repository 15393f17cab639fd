"""Saving the pre-trained encoder, warm-starting from it, and the pre-training run_fn."""

import dataclasses
import json
import os
import types

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # pylint: disable=g-import-not-at-top
import pytest
import tensorflow as tf
from tensorflow_transform.tf_metadata import dataset_metadata
from tensorflow_transform.tf_metadata import metadata_io
from tensorflow_transform.tf_metadata import schema_utils

from trainer import features
from trainer import pretrain_run_fn
from trainer import warm_start as model_warm_start
from trainer.config import EncoderConfig
from trainer.encoder import SequenceEncoder
from trainer.model import NextItemModel
from trainer.pretraining import warm_start

V = 20
NUM_ATTRIBUTES = 4
CONFIG = EncoderConfig(max_seq_len=6, embedding_dim=8, num_blocks=1, num_heads=1, ff_dim=8,
                       dropout=0.0)


def _weights(encoder):
  """Encoder weights in creation order (names get per-instance suffixes)."""
  return [v.numpy() for v in encoder.weights]


def _vocab(path, size, prefix):
  with open(path, "w") as f:
    f.write("".join(f"{prefix}{i}\n" for i in range(size)))
  return str(path)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
  """A random encoder saved with save_pretrained_encoder: (dir, encoder, vocab file)."""
  root = tmp_path_factory.mktemp("pretrained")
  encoder = SequenceEncoder(V, CONFIG)
  encoder(tf.zeros([1, CONFIG.max_seq_len], tf.int32))
  vocab = _vocab(root / "item_vocab", V, "item")
  table = tf.Variable(tf.random.normal([NUM_ATTRIBUTES, CONFIG.embedding_dim]))
  export_dir = str(root / "Format-Serving")
  warm_start.save_pretrained_encoder(encoder, export_dir, item_vocab_file=vocab,
                                     attribute_embeddings=table)
  return export_dir, encoder, vocab, table


def test_load_restores_every_encoder_weight(saved):
  export_dir, encoder, vocab, _ = saved
  fresh = SequenceEncoder(V, dataclasses.replace(CONFIG, dropout=0.3))  # dropout may differ
  fresh(tf.zeros([1, 3], tf.int32))
  assert any(not np.array_equal(a, b) for a, b in zip(_weights(fresh), _weights(encoder)))
  metadata = warm_start.load_pretrained_encoder(export_dir, fresh, item_vocab_file=vocab)
  assert metadata["num_items"] == V
  expected, restored = _weights(encoder), _weights(fresh)
  assert len(expected) == len(restored) > 10
  for index, (want, got) in enumerate(zip(expected, restored)):
    np.testing.assert_array_equal(got, want, err_msg=encoder.weights[index].name)


def test_load_builds_an_unbuilt_encoder_inside_a_model(saved):
  export_dir, encoder, _, _ = saved
  model = NextItemModel(V, CONFIG)
  warm_start.load_pretrained_encoder(export_dir, model.encoder)
  ids = tf.constant([[0, 0, 3, 4, 5, 6]])
  np.testing.assert_allclose(model.query_embedding(ids), encoder.last_hidden(ids), atol=1e-6)


def test_load_rejects_other_num_items_shape_or_vocabulary(saved, tmp_path):
  export_dir, _, _, _ = saved
  with pytest.raises(ValueError, match="num_items=20.*num_items=21"):
    warm_start.load_pretrained_encoder(export_dir, SequenceEncoder(V + 1, CONFIG))
  with pytest.raises(ValueError, match="embedding_dim"):
    warm_start.load_pretrained_encoder(
        export_dir, SequenceEncoder(V, dataclasses.replace(CONFIG, embedding_dim=16)))
  with pytest.raises(ValueError, match="max_seq_len"):
    warm_start.load_pretrained_encoder(
        export_dir, SequenceEncoder(V, dataclasses.replace(CONFIG, max_seq_len=7)))
  other_vocab = _vocab(tmp_path / "other_vocab", V, "other")
  with pytest.raises(ValueError, match="item vocabulary"):
    warm_start.load_pretrained_encoder(export_dir, SequenceEncoder(V, CONFIG),
                                       item_vocab_file=other_vocab)
  with pytest.raises(ValueError, match="holds no pre-trained encoder"):
    warm_start.load_pretrained_encoder(str(tmp_path), SequenceEncoder(V, CONFIG))


def test_attribute_embeddings_round_trip_and_check_shape(saved):
  export_dir, _, _, table = saved
  target = tf.Variable(tf.zeros([NUM_ATTRIBUTES, CONFIG.embedding_dim]))
  warm_start.load_pretrained_attribute_embeddings(export_dir, target)
  np.testing.assert_array_equal(target.numpy(), table.numpy())
  with pytest.raises(ValueError, match="shape"):
    warm_start.load_pretrained_attribute_embeddings(
        export_dir, tf.Variable(tf.zeros([NUM_ATTRIBUTES + 1, CONFIG.embedding_dim])))


def test_saved_model_is_loadable_and_encodes_like_the_encoder(saved):
  export_dir, encoder, _, _ = saved
  loaded = tf.saved_model.load(export_dir)
  ids = tf.constant([[0, 1, 2, 3, 4, 5], [0, 0, 0, 0, 7, 8]], tf.int32)
  out = loaded.signatures[warm_start.ENCODE_SIGNATURE](item_ids=ids)
  np.testing.assert_allclose(out["query_embedding"], encoder.last_hidden(ids), atol=1e-5)
  items = loaded.signatures[warm_start.ITEM_EMBEDDINGS_SIGNATURE]()["item_embeddings"]
  np.testing.assert_allclose(items, encoder.item_embeddings, atol=1e-6)


# --- run_fn end to end on a fake Transform output ---------------------------------------


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


def _fake_transform_run(root):
  """Transformed splits + a Transform output dir holding schema and vocabularies."""
  spec = {
      features.USER_ID: tf.io.FixedLenFeature([], tf.string),
      features.HISTORY_IDS: tf.io.VarLenFeature(tf.int64),
      features.TARGET_ID: tf.io.FixedLenFeature([], tf.int64),
      features.ITEM_INDEX: tf.io.FixedLenFeature([], tf.int64),
      features.ITEM_ATTRIBUTE_IDS: tf.io.VarLenFeature(tf.int64),
  }
  transform_dir = root / "transform_graph"
  metadata_io.write_metadata(
      dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec)),
      str(transform_dir / "transformed_metadata"))
  assets = transform_dir / "transform_fn" / "assets"
  os.makedirs(assets)
  _vocab(assets / features.ITEM_VOCAB, V, "item")
  _vocab(assets / features.ATTRIBUTE_VOCAB, NUM_ATTRIBUTES, "attr")
  rng = np.random.default_rng(0)
  examples = root / "transformed_examples"
  for split, count in ((features.TRAIN_SPLIT, 48), (features.EVAL_SPLIT, 16)):
    rows = []
    for u in range(count):
      start, n = int(rng.integers(V)), int(rng.integers(3, 8))
      items = [(start + i) % V for i in range(n)]
      rows.append(_example(user_id=f"u{u}".encode(), history_ids=items[:-1],
                           target_id=items[-1], item_index=V, item_attribute_ids=[]))
    _write(str(examples / f"Split-{split}" / "data.gz"), rows)
  items_rows = [_example(user_id=b"", history_ids=[], target_id=V, item_index=j,
                         item_attribute_ids=[j % NUM_ATTRIBUTES, NUM_ATTRIBUTES])
                for j in range(V)]
  _write(str(examples / f"Split-{features.ITEMS_SPLIT}" / "data.gz"), items_rows)
  return str(transform_dir), str(examples)


def test_run_fn_pretrains_and_a_fine_tuning_model_warm_starts(tmp_path):
  transform_dir, examples = _fake_transform_run(tmp_path)
  fn_args = types.SimpleNamespace(
      transform_output=transform_dir,
      train_files=[os.path.join(examples, f"Split-{features.TRAIN_SPLIT}", "*")],
      eval_files=[os.path.join(examples, f"Split-{features.EVAL_SPLIT}", "*")],
      serving_model_dir=str(tmp_path / "model" / "Format-Serving"),
      model_run_dir=str(tmp_path / "model_run"),
      custom_config={
          pretrain_run_fn.MODEL_CONFIG_KEY: {"encoder": CONFIG.to_dict()},
          pretrain_run_fn.PRETRAIN_CONFIG_KEY: {
              "masked_item_weight": 1.0, "attribute_weight": 0.5, "contrastive_weight": 0.0,
              "clustering_weight": 0.0, "epochs": 2, "batch_size": 64},
      })
  pretrain_run_fn.run_fn(fn_args)

  with open(os.path.join(fn_args.model_run_dir, "history.json")) as f:
    history = json.load(f)
  assert set(history) >= {"loss", "masked_item_loss", "attribute_loss", "val_loss"}
  assert len(history["loss"]) == 2
  metadata = warm_start.read_metadata(fn_args.serving_model_dir)
  assert metadata["num_items"] == V and metadata["num_attributes"] == NUM_ATTRIBUTES
  assert metadata["pretrain_config"]["attribute_weight"] == 0.5

  model = NextItemModel(V, dataclasses.replace(CONFIG, dropout=0.1))
  before = model.encoder.item_embeddings.numpy()
  warm_start.load_pretrained_encoder(
      fn_args.serving_model_dir, model.encoder,
      item_vocab_file=os.path.join(transform_dir, "transform_fn", "assets", features.ITEM_VOCAB))
  assert not np.array_equal(before, model.encoder.item_embeddings.numpy())
  loaded = tf.saved_model.load(fn_args.serving_model_dir)
  np.testing.assert_allclose(
      loaded.signatures["item_embeddings"]()["item_embeddings"],
      model.encoder.item_embeddings, atol=1e-6)

  # trainer.run_fn's own warm start (trainer.warm_start) reads the same encoder.
  other = NextItemModel(V, CONFIG)
  stats = model_warm_start.restore(other, [f"item{i}" for i in range(V)],
                                   model_warm_start.warm_start_dir(fn_args.serving_model_dir))
  assert stats["items_kept"] == V and stats["weights"] == len(other.encoder.weights)
  for want, got in zip(model.encoder.weights, other.encoder.weights):
    np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_run_fn_names_the_items_split_it_cannot_find(tmp_path):
  transform_dir, _ = _fake_transform_run(tmp_path)
  fn_args = types.SimpleNamespace(
      transform_output=transform_dir, train_files=[str(tmp_path / "elsewhere" / "*")],
      eval_files=[], serving_model_dir=str(tmp_path / "out"), model_run_dir=str(tmp_path / "run"),
      custom_config={pretrain_run_fn.PRETRAIN_CONFIG_KEY: {"attribute_weight": 0.5}})
  with pytest.raises(ValueError, match="Cannot derive the 'items' split"):
    pretrain_run_fn.run_fn(fn_args)


def test_retrieval_build_for_run_reads_attributes_and_target_frequencies(tmp_path):
  import tensorflow_transform as tft  # pylint: disable=g-import-not-at-top
  from trainer import inputs  # pylint: disable=g-import-not-at-top
  from trainer import retrieval  # pylint: disable=g-import-not-at-top
  transform_dir, examples = _fake_transform_run(tmp_path)
  output = tft.TFTransformOutput(transform_dir)
  train_files = [os.path.join(examples, f"Split-{features.TRAIN_SPLIT}", "*")]
  dataset = inputs.make_dataset(train_files, output.transformed_feature_spec(), V,
                                CONFIG.max_seq_len, 256, training=True, shuffle_seed=0)
  config = retrieval.RetrievalConfig(loss=retrieval.SAMPLED_SOFTMAX)
  model = retrieval.build_for_run(output, train_files, dataset, CONFIG, config)
  # _fake_transform_run gives item j the attribute j % 4 (plus an OOV one, dropped).
  assert model.item_attributes.attribute_ids.to_list() == [[j % NUM_ATTRIBUTES] for j in range(V)]
  probabilities = model._probabilities.numpy()  # pylint: disable=protected-access
  assert probabilities.shape == (V,) and probabilities.sum() == pytest.approx(1.0)
  assert len(set(np.round(probabilities, 6))) > 1, "frequencies must come from the data"
