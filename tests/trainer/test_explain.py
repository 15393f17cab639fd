"""The explain signature (trainer.explain): its answer, occlusion weights and faithfulness."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.framework import op_def_registry

from serving import contract
from serving import servable as servable_lib
from tests import explain_model
from tests.explain_model import CATALOGUE
from tests.explain_model import CONFIG
from trainer import explain

W = CONFIG.max_seq_len
K = 3
# Share of (row, recommendation) pairs on which removing the top-attributed history item
# must lower the score more than removing the least-attributed one. Occlusion gets all
# of them; a random attribution about half.
FAITHFUL_SHARE = 0.9


def _pad(histories):
  width = max(len(h) for h in histories)
  return tf.constant([h + [""] * (width - len(h)) for h in histories], tf.string)


def _random_histories(rng, rows, longest=W + 3):
  """Histories of 2..longest known ids, some repeating an item."""
  histories = []
  for _ in range(rows):
    history = [CATALOGUE[j] for j in rng.choice(len(CATALOGUE), rng.integers(2, longest + 1))]
    histories.append(history)
  return histories


@pytest.fixture(scope="module")
def module(tmp_path_factory):
  return explain_model.build_module(str(tmp_path_factory.mktemp("explain")))


def _score(module, histories, items):
  """float [n]: the model's score of items[i] for histories[i] (via the query tower)."""
  query = module.query_embedding(_pad(histories))[contract.OUTPUT_EMBEDDING].numpy()
  embeddings = module.item_embeddings()[contract.OUTPUT_EMBEDDINGS].numpy()
  return np.einsum("nd,nd->n", query, embeddings[[CATALOGUE.index(i) for i in items]])


def _without(history, item):
  return [i for i in history if i != item]


def test_latest_occurrences_names_each_item_once_at_its_last_position():
  window = tf.constant([[0, 0, 3, 5, 3], [1, 1, 1, 2, 1], [0, 0, 0, 0, 0]])
  np.testing.assert_array_equal(explain.latest_occurrences(window), [
      [False, False, False, True, True],
      [False, False, False, True, True],
      [False] * 5])


def test_without_each_removes_every_occurrence_of_each_candidate():
  indices = tf.ragged.constant([[4, 1, 4, 2], [7]], tf.int64)
  candidates = tf.constant([[4, 2, -1], [7, -1, 3]], tf.int64)
  assert explain.without_each(indices, candidates).to_list() == [
      [1, 2], [4, 1, 4], [4, 1, 4, 2], [], [7], [7]]


def test_explain_answers_as_serving_default_and_names_history_items(tmp_path):
  loaded = tf.saved_model.load(explain_model.export_model(str(tmp_path)))
  histories = [["item1", "item2", "item3"], ["item4", "not-an-item"], [],
               ["item1", "item2", "item1", "item5", "item6", "item7", "item8", "item9"]]
  history, k = _pad(histories), tf.constant(K)
  answer = loaded.signatures[contract.EXPLAIN_SIGNATURE](history=history, k=k)
  default = loaded.signatures[contract.DEFAULT_SIGNATURE](history=history, k=k)
  np.testing.assert_array_equal(answer[contract.OUTPUT_ITEM_IDS],
                                default[contract.OUTPUT_ITEM_IDS])
  np.testing.assert_allclose(answer[contract.OUTPUT_SCORES], default[contract.OUTPUT_SCORES])
  because = answer[contract.OUTPUT_BECAUSE_IDS].numpy().astype(str)
  weights = answer[contract.OUTPUT_BECAUSE_WEIGHTS].numpy()
  assert because.shape == weights.shape == (4, K, explain.MAX_BECAUSE)
  for row, history in enumerate(histories):
    window = [i for i in history if i in CATALOGUE][-W:]
    named = min(explain.MAX_BECAUSE, len(set(window)))
    for j in range(K):
      assert len(set(because[row, j, :named])) == named and set(because[row, j, :named]) <= set(
          window), (row, j)
      assert list(because[row, j, named:]) == [""] * (explain.MAX_BECAUSE - named)
      assert np.all(np.diff(weights[row, j, :named]) <= 0), "largest weight first"
      np.testing.assert_array_equal(weights[row, j, named:], 0.0)
  attention_ids = answer[contract.OUTPUT_ATTENTION_IDS].numpy().astype(str)
  assert attention_ids.tolist()[0] == ["", "", "", "item1", "item2", "item3"]
  assert attention_ids.tolist()[3] == ["item1", "item5", "item6", "item7", "item8", "item9"]
  attention = answer[contract.OUTPUT_ATTENTION].numpy()
  assert attention.shape == (4, CONFIG.num_blocks, CONFIG.num_heads, W)
  np.testing.assert_allclose(attention[[0, 1, 3]].sum(axis=-1), 1.0, rtol=1e-5)
  np.testing.assert_array_equal(attention[2], 0.0)   # no known item: nothing to attend to
  np.testing.assert_array_equal(attention[0, :, :, :3], 0.0)   # padding


@pytest.mark.parametrize("config", [CONFIG, explain_model.causal()], ids=["bidirectional",
                                                                           "causal"])
def test_weights_are_the_score_drop_when_the_item_is_removed(tmp_path, config):
  module = explain_model.build_module(str(tmp_path), config)
  rng = np.random.default_rng(1)
  histories = _random_histories(rng, 8)
  answer = explain_model.all_because(module)(_pad(histories), tf.constant(K))
  recommended = answer[contract.OUTPUT_ITEM_IDS].numpy().astype(str)
  because = answer[contract.OUTPUT_BECAUSE_IDS].numpy().astype(str)
  weights = answer[contract.OUTPUT_BECAUSE_WEIGHTS].numpy()
  rows, items, reduced = [], [], []
  for row, history in enumerate(histories):
    for j in range(K):
      for item in because[row, j]:
        if item:
          rows.append((row, j, list(because[row, j]).index(item)))
          items.append(recommended[row, j])
          reduced.append(_without(history, item))
  full = _score(module, [histories[r] for r, _, _ in rows], items)
  drops = full - _score(module, reduced, items)
  np.testing.assert_allclose([weights[r] for r in rows], drops, rtol=1e-4, atol=1e-5)


def faithful_share(module, histories) -> float:
  """Share of (row, recommendation) on which removing the top-attributed history item
  lowers the score more than removing the least-attributed one."""
  answer = explain_model.all_because(module)(_pad(histories), tf.constant(K))
  recommended = answer[contract.OUTPUT_ITEM_IDS].numpy().astype(str)
  because = answer[contract.OUTPUT_BECAUSE_IDS].numpy().astype(str)
  pairs = [(row, j) for row in range(len(histories)) for j in range(K)
           if np.count_nonzero(because[row, j]) >= 2]
  top = [_without(histories[r], because[r, j, 0]) for r, j in pairs]
  least = [_without(histories[r], because[r, j][because[r, j] != ""][-1]) for r, j in pairs]
  items = [recommended[r, j] for r, j in pairs]
  return float(np.mean(_score(module, top, items) < _score(module, least, items)))


def test_removing_the_top_attributed_item_lowers_the_score_more_than_the_least(module):
  share = faithful_share(module, _random_histories(np.random.default_rng(2), 60))
  print(f"faithful on {share:.1%} of (row, recommendation) pairs")
  assert share >= FAITHFUL_SHARE


def test_the_export_uses_only_ops_stock_tensorflow_registers(tmp_path):
  ops = servable_lib.op_types(servable_lib.read_meta_graph(
      explain_model.export_model(str(tmp_path))))
  assert "While" in ops, "expected explain's loop over rows in the graph"
  assert [op for op in ops if op_def_registry.get(op) is None] == []
