"""bench.serving.bench_model: the serving export around an encoder over a synthetic catalogue."""

import numpy as np
import pytest
import tensorflow as tf

from bench.serving import bench_model
from serving import contract
from serving import servable as servable_lib
from trainer.config import EncoderConfig

NUM_ITEMS = 300
CONFIG = EncoderConfig(embedding_dim=16, ff_dim=16, max_seq_len=8)
PER_CLUSTER = 30


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  model = bench_model.build_model(NUM_ITEMS, CONFIG, seed=3, items_per_cluster=PER_CLUSTER)
  export_dir = str(tmp_path_factory.mktemp("bench_model") / "export")
  bench_model.export_bench_model(export_dir, NUM_ITEMS, model=model)
  return model, export_dir, tf.saved_model.load(export_dir)


def _recommend(loaded, rows, k):
  width = max(len(r) for r in rows)
  history = [r + [""] * (width - len(r)) for r in rows]
  out = loaded.signatures[contract.DEFAULT_SIGNATURE](
      history=tf.constant(history, tf.string), k=tf.constant(k, tf.int32))
  return out[contract.OUTPUT_ITEM_IDS].numpy(), out[contract.OUTPUT_SCORES].numpy()


def test_recommend_equals_numpy_brute_force(exported):
  model, _, loaded = exported
  ids = bench_model.item_ids(NUM_ITEMS)
  rows = [
      ["item_5", "", "item_17", "not-an-item", "item_250"],   # padding and unknown ids
      [ids[i] for i in range(40, 52)],                         # longer than max_seq_len
      ["item_0"],
      [],                                                      # nothing known
  ]
  got_ids, got_scores = _recommend(loaded, rows, 7)
  assert got_ids.shape == got_scores.shape == (4, 7)
  expected = bench_model.expected_recommendations(
      model, [[i for i in r if i] for r in rows], 7)
  for row, ids_row, scores_row, want in zip(rows, got_ids, got_scores, expected):
    assert [i.decode() for i in ids_row] == [i for i, _ in want]
    np.testing.assert_allclose(scores_row, [s for _, s in want], rtol=1e-5, atol=1e-5)
    assert not set(row) & {i.decode() for i in ids_row}


def test_rows_past_the_remaining_items_are_empty_with_minus_inf(exported):
  _, _, loaded = exported
  got_ids, got_scores = _recommend(loaded, [["item_1", "item_2", "item_2", "item_3"]],
                                   NUM_ITEMS)
  assert got_ids.shape == (1, NUM_ITEMS)
  assert list(got_ids[0, -3:]) == [b"", b"", b""]
  assert np.all(np.isneginf(got_scores[0, -3:])) and np.all(np.isfinite(got_scores[0, :-3]))
  assert not {b"item_1", b"item_2", b"item_3"} & set(got_ids[0].tolist())


def test_query_and_item_embedding_signatures_match_the_model(exported):
  model, _, loaded = exported
  items = loaded.signatures[contract.ITEM_EMBEDDINGS_SIGNATURE]()
  assert [i.decode() for i in items[contract.OUTPUT_ITEM_IDS].numpy()] == \
      bench_model.item_ids(NUM_ITEMS)
  np.testing.assert_allclose(items[contract.OUTPUT_EMBEDDINGS], model.item_embeddings)
  query = loaded.signatures[contract.QUERY_EMBEDDING_SIGNATURE](
      history=tf.constant([["item_9", "item_4"]]))[contract.OUTPUT_EMBEDDING]
  inputs, _ = bench_model.model_inputs([["item_9", "item_4"]], NUM_ITEMS, CONFIG.max_seq_len)
  np.testing.assert_allclose(query, model.query_embedding(tf.constant(inputs)), atol=1e-5)


def test_bench_export_uses_only_stock_ops(exported):
  _, export_dir, _ = exported
  meta_graph = servable_lib.read_meta_graph(export_dir)
  ops = servable_lib.op_types(meta_graph)
  assert "TopKV2" in ops and "LookupTableFindV2" in ops
  assert [op for op in ops if op.startswith("Scann")] == []
  assert servable_lib.scann_ops_used(meta_graph) == []


def test_the_server_loads_the_bench_export(exported):
  _, export_dir, _ = exported
  servable = servable_lib.Servable(export_dir, 1)
  outputs = servable.run(contract.DEFAULT_SIGNATURE, {
      contract.INPUT_HISTORY: np.array([[b"item_3", b"nope"]], dtype=object),
      contract.INPUT_K: np.array(4, np.int32)})
  assert outputs[contract.OUTPUT_ITEM_IDS].shape == (1, 4)
  assert outputs[contract.OUTPUT_NUM_UNKNOWN].tolist() == [1]


def test_clustered_embeddings_are_deterministic_mixtures():
  a = bench_model.clustered_embeddings(2000, 32, seed=1, items_per_cluster=100)
  np.testing.assert_array_equal(a, bench_model.clustered_embeddings(2000, 32, seed=1,
                                                                    items_per_cluster=100))
  clusters = bench_model.item_clusters(2000, seed=1, items_per_cluster=100)
  assert a.shape == (2000, 32) and a.dtype == np.float32 and clusters.max() < 20
  # Items sit closer to their own cluster's mean than to the others'.
  means = np.stack([a[clusters == c].mean(axis=0) for c in range(20)])
  nearest = np.argmin(((a[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
  assert np.mean(nearest == clusters) > 0.95


def test_interest_histories_draw_distinct_items_from_a_few_clusters():
  histories = bench_model.interest_histories(3000, 50, seed=2, min_length=5, max_length=12,
                                             max_interests=3, items_per_cluster=100)
  clusters = bench_model.item_clusters(3000, seed=2, items_per_cluster=100)
  assert len(histories) == 50
  for history in histories:
    assert 5 <= len(history) <= 12 and len(set(history)) == len(history)
    assert len({clusters[int(item.split("_")[1])] for item in history}) <= 3
