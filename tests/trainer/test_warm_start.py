"""Warm start: known items keep their embeddings by raw id, other weights carry over."""

import numpy as np

from trainer import warm_start
from trainer.config import EncoderConfig
from trainer.config import RetrievalConfig
from trainer.model import NextItemModel
from trainer.pretraining.item_attributes import ItemAttributeTable
from trainer.retrieval import RetrievalModel

CONFIG = EncoderConfig(embedding_dim=8, ff_dim=8, num_blocks=1, num_heads=1, max_seq_len=5)


def test_known_items_keep_their_vectors_and_new_items_stay_fresh(tmp_path):
  old = NextItemModel(3, CONFIG)
  warm_start.save(old, ["a", "b", "c"], str(tmp_path))
  new = NextItemModel(3, CONFIG)
  fresh_d = new.item_embeddings.numpy()[2].copy()
  stats = warm_start.restore(new, ["c", "a", "d"], str(tmp_path))
  assert stats == {"weights": len(new.encoder.weights), "items_kept": 2, "items_new": 1}
  old_rows, new_rows = old.item_embeddings.numpy(), new.item_embeddings.numpy()
  np.testing.assert_array_equal(new_rows[0], old_rows[2])  # c
  np.testing.assert_array_equal(new_rows[1], old_rows[0])  # a
  np.testing.assert_array_equal(new_rows[2], fresh_d)      # d: new item
  table = new.encoder.item_table.embeddings
  for w_new, w_old in zip(new.encoder.weights, old.encoder.weights):
    if w_new is not table:
      np.testing.assert_array_equal(w_new.numpy(), w_old.numpy())


def test_grown_catalogue_keeps_old_rows(tmp_path):
  old = NextItemModel(2, CONFIG)
  warm_start.save(old, ["a", "b"], str(tmp_path))
  new = NextItemModel(4, CONFIG)
  stats = warm_start.restore(new, ["a", "b", "x", "y"], str(tmp_path))
  assert stats["items_kept"] == 2 and stats["items_new"] == 2
  np.testing.assert_array_equal(new.item_embeddings.numpy()[:2], old.item_embeddings.numpy())


def test_changed_architecture_trains_from_scratch(tmp_path):
  old = NextItemModel(3, CONFIG)
  warm_start.save(old, ["a", "b", "c"], str(tmp_path))
  wider = EncoderConfig(embedding_dim=8, ff_dim=16, num_blocks=1, num_heads=1, max_seq_len=5)
  new = NextItemModel(3, wider)
  before = [w.numpy().copy() for w in new.weights]
  assert warm_start.restore(new, ["a", "b", "c"], str(tmp_path))["weights"] == 0
  for w, b in zip(new.weights, before):
    np.testing.assert_array_equal(w.numpy(), b)


def test_encoder_carries_over_between_model_kinds(tmp_path):
  """A next-item (or pre-training) encoder warm-starts the retrieval model, whose
  extra candidate-tower weights keep their initialisation."""
  old = NextItemModel(3, CONFIG)
  warm_start.save(old, ["a", "b", "c"], str(tmp_path))
  attributes = ItemAttributeTable([[0], [1], []], num_attributes=2)
  new = RetrievalModel(3, CONFIG, RetrievalConfig(), attributes)
  attribute_table = new.attribute_table.embeddings.numpy().copy()
  stats = warm_start.restore(new, ["a", "b", "c"], str(tmp_path))
  assert stats["weights"] == len(old.encoder.weights) and stats["items_kept"] == 3
  for w_new, w_old in zip(new.encoder.weights, old.encoder.weights):
    np.testing.assert_array_equal(w_new.numpy(), w_old.numpy())
  np.testing.assert_array_equal(new.attribute_table.embeddings.numpy(), attribute_table)
