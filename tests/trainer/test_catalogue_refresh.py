"""trainer.catalogue_refresh: the served model's candidate tower, rebuilt from its SavedModel."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tests.trainer.text_items import clustered_vectors
from trainer import catalogue_refresh
from trainer import export
from trainer import features
from trainer.config import EncoderConfig
from trainer.config import RetrievalConfig
from trainer.pretraining.item_attributes import ItemAttributeTable
from trainer.retrieval import RetrievalModel

V = 8
ATTRIBUTES = ["brand:a", "brand:b", "category:c"]
ITEM_ATTRIBUTES = [[0], [1, 2], [], [2], [0, 2], [1], [], [0, 1, 2]]


def _exported_text_model(tmp_path, representation, normalize=False, text_match=False):
  """(model, its exported SavedModel's folder, item vectors), trained-looking weights."""
  tf.keras.utils.set_random_seed(0)
  config = EncoderConfig(max_seq_len=4, embedding_dim=8, num_blocks=1, num_heads=1, ff_dim=8,
                         dropout=0.0, item_representation=representation, adaptor_experts=2)
  vectors = clustered_vectors(2, 4)
  model = RetrievalModel(V, config, RetrievalConfig(use_item_attributes=True,
                                                      normalize_embeddings=normalize,
                                                      text_match=text_match),
                         item_attributes=ItemAttributeTable(ITEM_ATTRIBUTES, len(ATTRIBUTES)),
                         item_vectors=vectors)
  # Trained-looking weights: the adaptor's shift and gate start at zero.
  for weight in model.trainable_weights:
    weight.assign(tf.random.normal(weight.shape, stddev=0.3))
  if text_match:
    model.text_match_factor.assign(2.0)
  vocab = tmp_path / "vocab.txt"
  vocab.write_text("".join(f"item{j}\n" for j in range(V)))
  model_dir = export.save_module(
      export.RecommenderModule(model, export.HashTableItemVocabulary(str(vocab), V), 4),
      str(tmp_path / "model"))
  # A pipeline export ships the attribute vocabulary as an asset (the tf.Transform graph's).
  with open(os.path.join(model_dir, "assets", features.ATTRIBUTE_VOCAB), "w") as f:
    f.write("".join(f"{a}\n" for a in ATTRIBUTES))
  return model, model_dir, vectors


@pytest.mark.parametrize("representation, normalize, text_match",
                         [("text", False, False), ("id+text", False, False),
                          ("id+text", True, False), ("id+text", False, True),
                          ("text", True, True)])
def test_the_rebuilt_candidate_tower_reproduces_the_exported_one(tmp_path, representation,
                                                                  normalize, text_match):
  model, model_dir, vectors = _exported_text_model(tmp_path, representation, normalize,
                                                   text_match)
  served = catalogue_refresh.read_served_model(model_dir)
  np.testing.assert_allclose(served.text_vectors, vectors, atol=1e-7)
  rows = catalogue_refresh.CandidateTower(served).embed(
      vectors, range(V), [[ATTRIBUTES[a] for a in row] for row in ITEM_ATTRIBUTES])
  np.testing.assert_allclose(rows, model.item_embeddings.numpy(), atol=1e-5)


def test_an_item_added_by_a_refresh_gets_its_text_match_part(tmp_path):
  model, model_dir, vectors = _exported_text_model(tmp_path, "id+text", text_match=True)
  served = catalogue_refresh.read_served_model(model_dir)
  assert served.embeddings.shape == (V, 8 + vectors.shape[1])   # [c ; unit text]
  new = np.asarray([1.0, -2.0, 0.5, 0, 0, 3.0, 0, 1.0], np.float32)
  ids = [f"item{j}" for j in range(V)] + ["new"]
  refresh = catalogue_refresh.plan_refresh(served, ids, [[] for _ in ids], {"new": new}, {})
  assert refresh.added == ["new"]
  row = refresh.embeddings[V]
  adaptor = model.encoder.item_text.adaptor(new[None]).numpy()[0]   # no id row, no attributes
  np.testing.assert_allclose(row, np.concatenate([adaptor, new / np.linalg.norm(new)]),
                             atol=1e-5)
  # Served: the new item's score is the query tower's output (w * unit history text at
  # the end) against that row, so its text part adds w * cosine(history, new item).
  module = catalogue_refresh.build_module(served, refresh.item_ids, refresh.embeddings,
                                          refresh.available, refresh.in_catalogue,
                                          refresh.text_vectors, str(tmp_path / "assets"))
  loaded = tf.saved_model.load(export.save_module(module, str(tmp_path / "refreshed")))
  history = tf.constant([["item0", "item1"]])
  query = loaded.signatures["query_embedding"](history=history)["embedding"].numpy()[0]
  mean = vectors[:2].mean(0)
  cosine = mean @ new / np.linalg.norm(mean) / np.linalg.norm(new)
  assert query[8:] @ row[8:] == pytest.approx(float(model.text_match_weight) * cosine, rel=1e-5)
  top = loaded.signatures["serving_default"](history=history, k=tf.constant(V + 1))
  scores = dict(zip(top["item_ids"].numpy()[0].tolist(), top["scores"].numpy()[0].tolist()))
  assert scores[b"new"] == pytest.approx(float(query @ row), rel=1e-5)
