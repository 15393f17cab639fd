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


@pytest.mark.parametrize("representation, normalize", [("text", False), ("id+text", False),
                                                      ("id+text", True)])
def test_the_rebuilt_candidate_tower_reproduces_the_exported_one(tmp_path, representation,
                                                                  normalize):
  tf.keras.utils.set_random_seed(0)
  config = EncoderConfig(max_seq_len=4, embedding_dim=8, num_blocks=1, num_heads=1, ff_dim=8,
                         dropout=0.0, item_representation=representation, adaptor_experts=2)
  vectors = clustered_vectors(2, 4)
  model = RetrievalModel(V, config, RetrievalConfig(use_item_attributes=True,
                                                      normalize_embeddings=normalize),
                         item_attributes=ItemAttributeTable(ITEM_ATTRIBUTES, len(ATTRIBUTES)),
                         item_vectors=vectors)
  # Trained-looking weights: the adaptor's shift and gate start at zero.
  for weight in model.trainable_weights:
    weight.assign(tf.random.normal(weight.shape, stddev=0.3))
  vocab = tmp_path / "vocab.txt"
  vocab.write_text("".join(f"item{j}\n" for j in range(V)))
  model_dir = export.save_module(
      export.RecommenderModule(model, export.HashTableItemVocabulary(str(vocab), V), 4),
      str(tmp_path / "model"))
  # A pipeline export ships the attribute vocabulary as an asset (the tf.Transform graph's).
  with open(os.path.join(model_dir, "assets", features.ATTRIBUTE_VOCAB), "w") as f:
    f.write("".join(f"{a}\n" for a in ATTRIBUTES))
  served = catalogue_refresh.read_served_model(model_dir)
  np.testing.assert_allclose(served.text_vectors, vectors, atol=1e-7)
  rows = catalogue_refresh.CandidateTower(served).embed(
      vectors, range(V), [[ATTRIBUTES[a] for a in row] for row in ITEM_ATTRIBUTES])
  np.testing.assert_allclose(rows, model.item_embeddings.numpy(), atol=1e-5)
