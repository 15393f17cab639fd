"""The ``recommend`` signature of trainer.export: request-time rules against a NumPy reference."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.framework import op_def_registry

from bench.serving import bench_model
from serving import contract
from serving import servable as servable_lib
from trainer import export
from trainer.config import EncoderConfig

CONFIG = EncoderConfig(max_seq_len=6, embedding_dim=8, num_blocks=1, num_heads=1, ff_dim=8,
                       dropout=0.0)
UNKNOWN = ["no-such-id", "also-unknown"]
RULE_TYPES = ("exclude", "allow", "require", "exclude_attributes", "history", "combined")


def random_attributes(num_items: int, seed: int):
  """Values ``cat_*`` and ``brand_*``; each item has 0-1 category and 0-2 brands."""
  rng = np.random.default_rng(seed)
  values = [f"cat_{i}" for i in range(4)] + [f"brand_{i}" for i in range(5)]
  rows = []
  for _ in range(num_items):
    row = set(rng.choice(4, size=rng.integers(0, 2), replace=False).tolist())
    row |= {4 + b for b in rng.choice(5, size=rng.integers(0, 3), replace=False).tolist()}
    rows.append(sorted(row))
  return values, rows


def _export(root, num_items: int, seed: int, attributes=True):
  model = bench_model.build_model(num_items, CONFIG, seed=seed, items_per_cluster=8)
  values, rows = random_attributes(num_items, seed) if attributes else ([], [[]] * num_items)
  module = export.RecommenderModule(
      model, bench_model.vocabulary(num_items, str(root / "vocab")), CONFIG.max_seq_len,
      export.ItemAttributes(values, rows))
  path = export.save_module(module, str(root / "model"))
  return {"path": path, "loaded": tf.saved_model.load(path), "values": values, "rows": rows,
          "num_items": num_items}


@pytest.fixture(scope="module", params=[(40, 0), (13, 1)], ids=["40items", "13items"])
def catalogue(request, tmp_path_factory):
  num_items, seed = request.param
  return _export(tmp_path_factory.mktemp(f"rules{num_items}"), num_items, seed)


def _pad(rows, width=None):
  width = max([len(r) for r in rows] + [width or 0, 1])
  return np.array([[v.encode() for v in r] + [b""] * (width - len(r)) for r in rows],
                  dtype=object)


def rules_inputs(histories, k, exclude=None, allow=None, require=None, exclude_attributes=None,
                 keep_history=False, diversity=0.0):
  """Keyword arguments of the ``recommend`` signature (lists of lists; None = no rule)."""
  empty = [[] for _ in histories]
  lists = {contract.INPUT_HISTORY: histories, contract.INPUT_EXCLUDE_IDS: exclude or empty,
           contract.INPUT_ALLOW_IDS: allow or empty,
           contract.INPUT_REQUIRE_ATTRIBUTES: require or empty,
           contract.INPUT_EXCLUDE_ATTRIBUTES: exclude_attributes or empty}
  inputs = {name: tf.constant(_pad(rows), tf.string) for name, rows in lists.items()}
  inputs.update({contract.INPUT_K: tf.constant(k, tf.int32),
                 contract.INPUT_KEEP_HISTORY: tf.constant(keep_history),
                 contract.INPUT_DIVERSITY: tf.constant(diversity, tf.float32)})
  return inputs


def eligible_items(ids, values, item_values, inputs):
  """Brute force in Python: per row of the ``recommend`` inputs, (the item indices it may
  get, the number of rule values unknown to the catalogue)."""
  index = {item: i for i, item in enumerate(ids)}
  value_index = {v: i for i, v in enumerate(values)}
  has = [set(row) for row in item_values]
  rows = {name: [[v.decode() for v in row if v] for row in inputs[name].numpy()]
          for name in (contract.INPUT_HISTORY, *contract.RULE_LIST_INPUTS)}
  results = []
  for b, history in enumerate(rows[contract.INPUT_HISTORY]):
    history = {index[i] for i in history if i in index}
    exclude = rows[contract.INPUT_EXCLUDE_IDS][b]
    allow = rows[contract.INPUT_ALLOW_IDS][b]
    require = rows[contract.INPUT_REQUIRE_ATTRIBUTES][b]
    exclude_attributes = rows[contract.INPUT_EXCLUDE_ATTRIBUTES][b]
    eligible = []
    for item in range(len(ids)):
      if item in history and not bool(inputs[contract.INPUT_KEEP_HISTORY]):
        continue
      if ids[item] in exclude or (allow and ids[item] not in allow):
        continue
      if not all(value_index.get(v, -1) in has[item] for v in require):
        continue
      if any(value_index.get(v, -1) in has[item] for v in exclude_attributes):
        continue
      eligible.append(item)
    unknown = (sum(i not in index for i in exclude + allow)
               + sum(v not in value_index for v in require + exclude_attributes))
    results.append((eligible, unknown))
  return results


def reference(catalogue, inputs):
  """Brute force in NumPy: per row, (eligible item indices, top-k scores, unknown count)."""
  loaded, num_items = catalogue["loaded"], catalogue["num_items"]
  query = loaded.signatures[contract.QUERY_EMBEDDING_SIGNATURE](
      history=inputs[contract.INPUT_HISTORY])[contract.OUTPUT_EMBEDDING].numpy()
  items = loaded.signatures[contract.ITEM_EMBEDDINGS_SIGNATURE]()[
      contract.OUTPUT_EMBEDDINGS].numpy()
  k = int(inputs[contract.INPUT_K])
  rows = eligible_items(bench_model.item_ids(num_items), catalogue["values"], catalogue["rows"],
                        inputs)
  results = []
  for q, (eligible, unknown) in zip(query, rows):
    scores = items @ q
    top = sorted((-scores[eligible]).tolist())[:k]
    results.append((set(eligible), scores, [-s for s in top], unknown))
  return results


def check_against_reference(catalogue, inputs):
  outputs = catalogue["loaded"].signatures[contract.RULES_SIGNATURE](**inputs)
  index = {item: i for i, item in enumerate(bench_model.item_ids(catalogue["num_items"]))}
  k = int(inputs[contract.INPUT_K])
  for b, (eligible, scores, top, unknown) in enumerate(reference(catalogue, inputs)):
    got_ids = [i.decode() for i in outputs[contract.OUTPUT_ITEM_IDS].numpy()[b]]
    got_scores = outputs[contract.OUTPUT_SCORES].numpy()[b]
    served = [i for i in got_ids if i]
    # k results whenever k eligible items exist; empty slots only past them.
    assert len(served) == min(k, len(eligible)), (b, got_ids, len(eligible))
    assert got_ids[:len(served)] == served
    assert {index[i] for i in served} <= eligible
    assert len(set(served)) == len(served)
    np.testing.assert_allclose(got_scores[:len(served)], top, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got_scores[:len(served)], scores[[index[i] for i in served]],
                               rtol=1e-4, atol=1e-5)
    assert np.all(np.isneginf(got_scores[len(served):]))
    assert outputs[contract.OUTPUT_NUM_UNKNOWN_RULES].numpy()[b] == unknown


def random_request(catalogue, rule_type: str, seed: int, batch: int = 8):
  """Random histories and one kind of rule (or all of them) per row."""
  rng = np.random.default_rng(seed)
  ids = bench_model.item_ids(catalogue["num_items"])
  values = catalogue["values"] + UNKNOWN[:1]

  def some(pool, most, unknown=0.3):
    chosen = [pool[i] for i in rng.choice(len(pool), size=rng.integers(0, most + 1))]
    return chosen + ([UNKNOWN[1]] if rng.random() < unknown else [])

  uses = lambda kind: rule_type in (kind, "combined")   # pylint: disable=unnecessary-lambda-assignment
  histories = [some(ids, 5) for _ in range(batch)]
  rules = {
      "exclude": [some(ids, 8) for _ in range(batch)] if uses("exclude") else None,
      "allow": ([some(ids, 10) if rng.random() < 0.7 else [] for _ in range(batch)]
                if uses("allow") else None),
      "require": [some(values, 2, 0.1) for _ in range(batch)] if uses("require") else None,
      "exclude_attributes": ([some(values, 2) for _ in range(batch)]
                             if uses("exclude_attributes") else None),
  }
  keep_history = bool(rng.random() < 0.5) if uses("history") else False
  k = int(rng.integers(1, catalogue["num_items"] + 1))
  return rules_inputs(histories, k, keep_history=keep_history, **rules)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("rule_type", RULE_TYPES)
def test_every_rule_matches_a_brute_force_reference(catalogue, rule_type, seed):
  check_against_reference(catalogue, random_request(catalogue, rule_type, seed))


@pytest.mark.parametrize("keep_history", [False, True])
def test_history_is_excluded_unless_kept(catalogue, keep_history):
  histories = [bench_model.item_ids(catalogue["num_items"])[:5]]
  inputs = rules_inputs(histories, catalogue["num_items"], keep_history=keep_history)
  check_against_reference(catalogue, inputs)
  served = catalogue["loaded"].signatures[contract.RULES_SIGNATURE](**inputs)[
      contract.OUTPUT_ITEM_IDS].numpy()[0]
  assert (set(h.encode() for h in histories[0]) <= set(served)) == keep_history


def test_k_results_come_back_when_a_rule_leaves_exactly_k_items(catalogue):
  ids = bench_model.item_ids(catalogue["num_items"])
  allow = [ids[3:8]]
  outputs = catalogue["loaded"].signatures[contract.RULES_SIGNATURE](
      **rules_inputs([ids[:3]], 5, allow=allow))
  assert sorted(i.decode() for i in outputs[contract.OUTPUT_ITEM_IDS].numpy()[0]) == allow[0]


def test_rules_with_nothing_eligible_give_empty_slots_and_count_unknowns(catalogue):
  outputs = catalogue["loaded"].signatures[contract.RULES_SIGNATURE](**rules_inputs(
      [["item_1"], ["item_2"]], 3, allow=[UNKNOWN, []], require=[[], ["no-such-value"]]))
  assert outputs[contract.OUTPUT_ITEM_IDS].numpy().tolist() == [[b""] * 3] * 2
  assert outputs[contract.OUTPUT_NUM_UNKNOWN_RULES].numpy().tolist() == [2, 1]


def test_serving_default_is_unchanged_and_agrees_with_the_rules_signature(catalogue):
  signatures = catalogue["loaded"].signatures
  history = [["item_1", "", "item_4"], ["item_9"], []]
  plain = signatures[contract.DEFAULT_SIGNATURE](
      history=tf.constant(_pad(history)), k=tf.constant(5))
  assert set(plain) == {contract.OUTPUT_ITEM_IDS, contract.OUTPUT_SCORES}
  ruled = signatures[contract.RULES_SIGNATURE](**rules_inputs(history, 5))
  assert ruled[contract.OUTPUT_ITEM_IDS].numpy().tolist() == plain[
      contract.OUTPUT_ITEM_IDS].numpy().tolist()
  np.testing.assert_allclose(ruled[contract.OUTPUT_SCORES], plain[contract.OUTPUT_SCORES])


def test_export_without_attributes_serves_rules_with_every_attribute_unknown(tmp_path):
  catalogue = _export(tmp_path, 12, seed=2, attributes=False)
  check_against_reference(catalogue, rules_inputs(
      [["item_1"], ["item_2"]], 4, exclude=[["item_3"], []],
      require=[[], ["cat_0"]], exclude_attributes=[["brand_1", "cat_2"], []]))


def intra_list_diversity(embeddings: np.ndarray, indices) -> float:
  """Mean pairwise cosine distance of the items ``indices`` (rows of ``embeddings``)."""
  unit = embeddings[list(indices)]
  unit = unit / np.linalg.norm(unit, axis=1, keepdims=True)
  similarity = unit @ unit.T
  n = len(unit)
  return float((n * n - similarity.sum()) / max(n * (n - 1), 1))


def _mmr(scores, embeddings, k, weight, pool_size):
  values, indices = export.mmr_top_k(tf.constant(scores, tf.float32),
                                     tf.constant(embeddings, tf.float32), tf.constant(k),
                                     tf.constant(weight, tf.float32), tf.constant(pool_size))
  return values.numpy(), indices.numpy()


@pytest.mark.parametrize("seed", range(3))
def test_mmr_with_weight_zero_is_plain_top_k(seed):
  rng = np.random.default_rng(seed)
  scores = rng.normal(size=(4, 30)).astype(np.float32)
  scores[rng.random(scores.shape) < 0.5] = -np.inf    # ineligible items
  embeddings = rng.normal(size=(30, 5)).astype(np.float32)
  values, indices = _mmr(scores, embeddings, 10, 0.0, 20)
  top = tf.math.top_k(scores, k=10)
  np.testing.assert_array_equal(values, top.values.numpy())
  finite = np.isfinite(values)
  np.testing.assert_array_equal(indices[finite], top.indices.numpy()[finite])


def test_mmr_trades_relevance_for_diversity_on_near_duplicates():
  # Items 0-2 are near-duplicates with the best scores; 3 and 4 point elsewhere.
  embeddings = np.array([[1, 0, 0], [1, 0.01, 0], [1, 0, 0.01], [0, 1, 0], [0, 0, 1]],
                        np.float32)
  scores = np.array([[1.0, 0.99, 0.98, 0.9, 0.85]], np.float32)
  _, plain = _mmr(scores, embeddings, 3, 0.0, 5)
  _, diverse = _mmr(scores, embeddings, 3, 0.5, 5)
  assert plain[0].tolist() == [0, 1, 2]
  assert diverse[0].tolist() == [0, 3, 4]
  assert (intra_list_diversity(embeddings, diverse[0])
          > intra_list_diversity(embeddings, plain[0]))


def test_diversity_weight_raises_intra_list_diversity_of_served_lists(catalogue):
  loaded = catalogue["loaded"]
  embeddings = loaded.signatures[contract.ITEM_EMBEDDINGS_SIGNATURE]()[
      contract.OUTPUT_EMBEDDINGS].numpy()
  index = {item: i for i, item in enumerate(bench_model.item_ids(catalogue["num_items"]))}
  histories = bench_model.interest_histories(catalogue["num_items"], 8, seed=3, min_length=2, max_length=4,
                                             items_per_cluster=8)

  def mean_diversity(weight):
    outputs = loaded.signatures[contract.RULES_SIGNATURE](
        **rules_inputs(histories, 5, diversity=weight))
    lists = [[index[i.decode()] for i in row] for row in outputs[
        contract.OUTPUT_ITEM_IDS].numpy()]
    return np.mean([intra_list_diversity(embeddings, row) for row in lists]), outputs

  plain, _ = mean_diversity(0.0)
  diverse, outputs = mean_diversity(0.7)
  assert diverse > plain
  # Scores stay the model's: each served item's score is its plain score.
  assert np.all(np.isfinite(outputs[contract.OUTPUT_SCORES].numpy()))


def test_diversity_outside_zero_to_one_is_refused(catalogue):
  with pytest.raises(tf.errors.InvalidArgumentError, match="diversity"):
    catalogue["loaded"].signatures[contract.RULES_SIGNATURE](
        **rules_inputs([["item_1"]], 3, diversity=1.5))


def test_rule_rows_must_match_history_rows(catalogue):
  with pytest.raises(tf.errors.InvalidArgumentError, match="one row per history row"):
    catalogue["loaded"].signatures[contract.RULES_SIGNATURE](
        **{**rules_inputs([["item_1"]], 3),
           contract.INPUT_EXCLUDE_IDS: tf.constant([["item_2"], ["item_3"]])})


def test_every_signature_uses_only_stock_ops(catalogue):
  meta_graph = servable_lib.read_meta_graph(catalogue["path"])
  assert contract.RULES_SIGNATURE in meta_graph.signature_def
  ops = servable_lib.op_types(meta_graph)
  assert servable_lib.scann_ops_used(meta_graph) == []
  assert [op for op in ops if op_def_registry.get(op) is None] == []


def test_item_attributes_refuse_bad_tables():
  with pytest.raises(ValueError, match="distinct"):
    export.ItemAttributes(["a", "a"], [[0]])
  with pytest.raises(ValueError, match="indices"):
    export.ItemAttributes(["a"], [[1]])
