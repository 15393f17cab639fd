"""The serving export (trainer.export): the candidate matrix computed once, the pipeline's
id lookup, and its answers against the Keras model itself."""

import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from serving import contract
from tests.trainer import fake_transform
from tests.trainer.test_rules import eligible_items
from tests.trainer.test_rules import rules_inputs
from tests.trainer.text_items import clustered_vectors
from trainer import explain
from trainer import export
from trainer import features
from trainer.config import EncoderConfig
from trainer.config import RetrievalConfig
from trainer.pretraining.item_attributes import ItemAttributeTable
from trainer.retrieval import RetrievalModel

V = 8
CONFIG = EncoderConfig(max_seq_len=4, embedding_dim=8, num_blocks=1, num_heads=1, ff_dim=8,
                       dropout=0.0, item_representation="text", adaptor_experts=2)
VOCAB = [f"item{j}" for j in range(V)]


def _export(model, tmp_path):
  vocab_file = tmp_path / "vocab.txt"
  vocab_file.write_text("".join(f"{item}\n" for item in VOCAB))
  module = export.RecommenderModule(
      model, export.HashTableItemVocabulary(str(vocab_file), V), CONFIG.max_seq_len)
  return tf.saved_model.load(export.save_module(module, str(tmp_path / "model"))), module


def test_text_items_export_with_the_candidate_matrix_computed_once(tmp_path):
  tf.keras.utils.set_random_seed(0)
  # Item 5 never trained: left out of training's softmax, still exported and served.
  model = RetrievalModel(V, CONFIG, RetrievalConfig(), item_vectors=clustered_vectors(2, 4),
                         untrained=np.arange(V) == 5)
  assert model.excluded is not None
  loaded, module = _export(model, tmp_path)
  assert isinstance(module.model, export.FixedCandidates)
  signatures = loaded.signatures
  items = signatures[contract.ITEM_EMBEDDINGS_SIGNATURE]()
  np.testing.assert_allclose(items[contract.OUTPUT_EMBEDDINGS], model.item_embeddings,
                             atol=1e-6)
  assert items[contract.OUTPUT_ITEM_IDS].numpy().astype(str).tolist() == VOCAB
  history = tf.constant([["item1", "item2", ""], ["item6", "", ""]])
  query = signatures[contract.QUERY_EMBEDDING_SIGNATURE](history=history)
  expected = model.query_embedding(tf.constant([[0, 0, 2, 3], [0, 0, 0, 7]]))
  np.testing.assert_allclose(query[contract.OUTPUT_EMBEDDING], expected, atol=1e-5)
  top = signatures[contract.DEFAULT_SIGNATURE](history=history, k=tf.constant(3))
  scores = expected.numpy() @ model.item_embeddings.numpy().T
  scores[0, [1, 2]] = scores[1, 6] = -np.inf   # the rows' own history
  best = np.argsort(-scores, axis=1)[:, :3]
  assert top[contract.OUTPUT_ITEM_IDS].numpy().astype(str).tolist() == [
      [VOCAB[j] for j in row] for row in best]


def test_id_items_export_their_candidate_matrix_computed_once():
  model = RetrievalModel(V, dataclasses.replace(CONFIG, item_representation="id"))
  fixed = export.servable_model(model)
  assert isinstance(fixed, export.FixedCandidates)
  assert isinstance(fixed.item_embeddings, tf.Variable)
  np.testing.assert_array_equal(fixed.item_embeddings.numpy(), model.item_embeddings.numpy())
  assert export.servable_model(fixed) is fixed   # already a variable: kept as it is


def test_unavailable_items_are_never_among_the_top_k(tmp_path):
  tf.keras.utils.set_random_seed(0)
  model = RetrievalModel(V, CONFIG, RetrievalConfig(), item_vectors=clustered_vectors(2, 4))
  loaded, module = _export(model, tmp_path)
  assert module.available.numpy().all()   # a trained export serves every item
  available = np.ones([V], bool)
  available[[0, 3, 6]] = False
  module.available.assign(available)
  reloaded = tf.saved_model.load(export.save_module(module, str(tmp_path / "masked")))
  history = tf.constant([["item1", "item2"], ["", ""]])
  top = reloaded.signatures[contract.DEFAULT_SIGNATURE](history=history, k=tf.constant(V))
  ids = top[contract.OUTPUT_ITEM_IDS].numpy().astype(str)
  full = loaded.signatures[contract.DEFAULT_SIGNATURE](history=history, k=tf.constant(V))
  expected = [[i for i in row if i not in ("", "item0", "item3", "item6")]
              for row in full[contract.OUTPUT_ITEM_IDS].numpy().astype(str).tolist()]
  # Same order as without the mask; the slots past the eligible items stay empty.
  assert [row[:len(e)].tolist() for row, e in zip(ids, expected)] == expected
  assert (ids[0, 3:] == "").all() and (ids[1, 5:] == "").all()
  assert np.isinf(top[contract.OUTPUT_SCORES].numpy()[0, 3:]).all()


def test_pipeline_vocabulary_maps_ids_as_the_transform_graph(tmp_path):
  transform_dir, _ = fake_transform.write(tmp_path, graph=True)
  output = tft.TFTransformOutput(transform_dir)
  vocabulary = export.TransformItemVocabulary(output)
  rng = np.random.default_rng(0)
  pool = fake_transform.ITEM_VOCAB + ["", "", "unknown", "item", "item1 "]
  history = tf.constant([[pool[i] for i in rng.integers(0, len(pool), 9)] for _ in range(16)])
  got = vocabulary.history_indices(history).numpy()
  # The transform graph on the same rows: padding dropped first, unknown ids -> OOV bucket.
  compact = tf.ragged.boolean_mask(history, tf.not_equal(history, contract.PAD))
  batch = tf.shape(history)[0]
  empty = tf.fill([batch], contract.PAD)
  transformed = output.transform_features_layer()({
      features.HISTORY: compact.to_sparse(), features.TARGET: empty, features.ITEM_ID: empty,
      features.USER_ID: empty, features.TITLE: empty,
      features.ITEM_ATTRIBUTES: tf.SparseTensor(tf.zeros([0, 2], tf.int64),
                                                tf.zeros([0], tf.string),
                                                tf.stack([tf.cast(batch, tf.int64), 0]))})
  expected = tf.RaggedTensor.from_sparse(transformed[features.HISTORY_IDS]).to_list()
  assert [[j for j in row if j >= 0] for row in got.tolist()] == [
      [j if j < fake_transform.V else -1 for j in row if j < fake_transform.V]
      for row in expected]
  # -1 exactly at padding and unknown ids, so the position of every known id is kept.
  assert ((got >= 0) == np.isin(history.numpy(), [i.encode() for i in fake_transform.ITEM_VOCAB])
          ).all()
  # Both vocabularies ship as assets (a catalogue refresh reads the attribute values).
  tf.saved_model.save(vocabulary, str(tmp_path / "saved"))
  assert sorted(p.name for p in (tmp_path / "saved" / "assets").iterdir()) == sorted(
      [features.ATTRIBUTE_VOCAB, features.ITEM_VOCAB])


# Answers of the export against the Keras model: float32 sums in another order.
TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}
ITEMS = [f"item{j}" for j in range(24)]
VALUES = ["cat:a", "cat:b", "brand:x", "brand:y"]


def _model(attention: str):
  """A trained-looking id model with attribute embeddings and a frequency filter."""
  tf.keras.utils.set_random_seed(1)
  config = EncoderConfig(max_seq_len=6, embedding_dim=8, num_blocks=2, num_heads=2, ff_dim=8,
                         dropout=0.0, attention=attention, filter_weight=0.5)
  rows = [[j % 2, 2 + j % 3] if j % 3 < 2 else [j % 2] for j in range(len(ITEMS))]
  model = RetrievalModel(len(ITEMS), config,
                         RetrievalConfig(targets="prefixes", use_item_attributes=True),
                         item_attributes=ItemAttributeTable(rows, len(VALUES)))
  for weight in model.trainable_weights:
    weight.assign(tf.random.normal(weight.shape, stddev=0.3))
  return model, rows


def _encoder_input(history, length):
  known = [ITEMS.index(i) + 1 for i in history if i in ITEMS][-length:]
  return [0] * (length - len(known)) + known


def _scores(model, histories):
  """float [B, V]: the Keras model's scores, candidate tower computed now."""
  inputs = tf.constant([_encoder_input(h, model.encoder_config.max_seq_len) for h in histories])
  return (model.query_embedding(inputs).numpy()
          @ model.candidate_embeddings(training=False).numpy().T)


def _top(scores, eligible, k):
  best = sorted(eligible, key=lambda j: -scores[j])[:k]
  return [ITEMS[j] for j in best], scores[best]


def _check(outputs, expected, b):
  ids, scores = expected
  got = outputs[contract.OUTPUT_ITEM_IDS].numpy()[b].astype(str).tolist()
  assert got[:len(ids)] == ids and all(i == "" for i in got[len(ids):])
  np.testing.assert_allclose(outputs[contract.OUTPUT_SCORES].numpy()[b][:len(ids)], scores,
                             **TOLERANCE)


def _random_histories(rng, rows, width):
  pool = ITEMS + ["unknown"]
  return [[pool[i] for i in rng.integers(0, len(pool), rng.integers(1, width + 1))] + [""]
          for _ in range(rows)]


@pytest.mark.parametrize("attention", ["bidirectional", "causal"])
def test_export_answers_as_the_keras_model_with_its_candidate_tower_per_request(
    tmp_path, attention):
  model, rows = _model(attention)
  vocab = tmp_path / "vocab.txt"
  vocab.write_text("".join(f"{item}\n" for item in ITEMS))
  length = model.encoder_config.max_seq_len
  loaded = tf.saved_model.load(export.save_module(export.RecommenderModule(
      model, export.HashTableItemVocabulary(str(vocab), len(ITEMS)), length,
      export.ItemAttributes(VALUES, rows)), str(tmp_path / "model")))
  rng = np.random.default_rng(0)
  histories = _random_histories(rng, 12, 2 * length)
  inputs = rules_inputs(
      histories, 5, exclude=[list(rng.choice(ITEMS, 3)) for _ in histories],
      allow=[list(rng.choice(ITEMS, 12)) if b % 3 else [] for b in range(len(histories))],
      require=[[VALUES[b % 2]] if b % 2 else [] for b in range(len(histories))],
      exclude_attributes=[[VALUES[2]] if b % 4 == 1 else [] for b in range(len(histories))],
      keep_history=False)
  scores = _scores(model, histories)
  served = loaded.signatures[contract.DEFAULT_SIGNATURE](
      history=inputs[contract.INPUT_HISTORY], k=tf.constant(5))
  explained = loaded.signatures[contract.EXPLAIN_SIGNATURE](
      history=inputs[contract.INPUT_HISTORY], k=tf.constant(5))
  ruled = loaded.signatures[contract.RULES_SIGNATURE](**inputs)
  rule_rows = eligible_items(ITEMS, VALUES, rows, inputs)
  for b, history in enumerate(histories):
    plain = [j for j in range(len(ITEMS)) if ITEMS[j] not in history]
    _check(served, _top(scores[b], plain, 5), b)
    _check(explained, _top(scores[b], plain, 5), b)
    _check(ruled, _top(scores[b], rule_rows[b][0], 5), b)
  # explain's weights: the score drop when the named history item is removed everywhere.
  because = explained[contract.OUTPUT_BECAUSE_IDS].numpy().astype(str)
  weights = explained[contract.OUTPUT_BECAUSE_WEIGHTS].numpy()
  named = 0
  for b, history in enumerate(histories):
    for j, item in enumerate(served[contract.OUTPUT_ITEM_IDS].numpy()[b].astype(str)):
      for m, cause in enumerate(because[b, j]):
        if cause:
          without = _scores(model, [[i for i in history if i != cause]])[0]
          np.testing.assert_allclose(weights[b, j, m],
                                     scores[b, ITEMS.index(item)] - without[ITEMS.index(item)],
                                     **TOLERANCE)
          named += 1
  assert named >= len(histories) * 5, "explain named too few history items to compare"
  assert explain.MAX_BECAUSE == because.shape[2]


def test_dense_window_and_masks_match_their_ragged_definitions():
  rng = np.random.default_rng(0)
  indices = np.where(rng.random([32, 11]) < 0.3, -1, rng.integers(0, 9, [32, 11]))
  indices[0] = -1                                                  # a row with nothing known
  known = tf.ragged.boolean_mask(tf.constant(indices), indices >= 0)
  for length in (1, 4, 11, 15):
    np.testing.assert_array_equal(export.left_pad_known(tf.constant(indices), length),
                                  export.left_pad(known, length, pad_value=-1))
  expected = np.zeros([32, 9], np.int32)
  for b, row in enumerate(indices):
    for j in row[row >= 0]:
      expected[b, j] += 1
  np.testing.assert_array_equal(export.index_counts(tf.constant(indices), 9), expected)
  np.testing.assert_array_equal(export.index_mask(tf.constant(indices), 9), expected > 0)


def test_pipeline_vocabulary_without_an_attribute_vocabulary_ships_the_item_one(tmp_path):
  transform_dir, _ = fake_transform.write(tmp_path)
  os.remove(os.path.join(transform_dir, "transform_fn", "assets", features.ATTRIBUTE_VOCAB))
  vocabulary = export.TransformItemVocabulary(tft.TFTransformOutput(transform_dir))
  assert vocabulary.attribute_vocab_asset is None
  tf.saved_model.save(vocabulary, str(tmp_path / "saved"))
  assert [p.name for p in (tmp_path / "saved" / "assets").iterdir()] == [features.ITEM_VOCAB]
