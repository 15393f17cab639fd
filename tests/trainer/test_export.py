"""The serving export (trainer.export) of a model whose items are text vectors."""

import dataclasses

import numpy as np
import tensorflow as tf

from serving import contract
from tests.trainer.text_items import clustered_vectors
from trainer import export
from trainer.config import EncoderConfig
from trainer.config import RetrievalConfig
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
  model = RetrievalModel(V, CONFIG, RetrievalConfig(), item_vectors=clustered_vectors(2, 4))
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


def test_id_items_export_the_model_itself():
  model = RetrievalModel(V, dataclasses.replace(CONFIG, item_representation="id"))
  assert export.servable_model(model) is model


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
