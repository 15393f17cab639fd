"""RankingEvaluator: executor outputs on a tiny catalogue with hand-computed ranks.

The fake model scores item j for a history whose most recent item is x with
``Q[x][j]`` (item embeddings are the identity, the query embedding of a history
is the row of ``Q`` of its last item), so every rank below is known by hand.

Catalogue: i1..i6 (indices 0..5). Test split:
  u1 history [i1, i2]           target i3
  u2 history [i4]               target i5
  u3 history [i2, qq, i6, i1]   target i1 (repeat; qq is not in the catalogue)
  u4 history [i3]               target zz (not in the catalogue: a miss)
Train split (popularity counts i1:2, i2:4, i3:3, i4:1, i5:0, i6:0; zz:1):
  [i1, i2] -> i3, [i2, i3] -> i2, [i4, i1, zz] -> i2, [] -> i3
Slices: history length u1 2, u2 1, u3 4, u4 1; of the 11 training interactions
i2 is head, i3 and i1 torso, i4 and zz tail (i5, i6 unseen: tail and cold), so
targets u1 torso, u2 tail + cold, u3 torso, u4 tail.
"""

import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf
from tfx.components.util import model_utils
from tfx.types import artifact_utils
from tfx.types import channel
from tfx.types import standard_artifacts
from tfx.utils import path_constants

from components.ranking_evaluator import component
from components.ranking_evaluator import component_spec
from components.ranking_evaluator import evaluation
from components.ranking_evaluator import executor
from components.sequence_builder import cold_items
from serving import contract
from trainer import features

ITEMS = ["i1", "i2", "i3", "i4", "i5", "i6"]
ATTRIBUTES = {"i1": ["a"], "i2": ["a", "b"], "i3": ["b"], "i4": [], "i5": ["a", "c"],
              "i6": ["c"]}
KS = [1, 3, 5]
TEST_ROWS = [("u1", ["i1", "i2"], "i3"),
             ("u2", ["i4"], "i5"),
             ("u3", ["i2", "qq", "i6", "i1"], "i1"),
             ("u4", ["i3"], "zz")]
TRAIN_ROWS = [("u1", ["i1", "i2"], "i3"),
              ("u2", ["i2", "i3"], "i2"),
              ("u3", ["i4", "i1", "zz"], "i2"),
              ("u4", [], "i3")]
# Scores by last history item.
CANDIDATE_Q = {
    "i2": [0.9, 0.1, 0.5, 0.5, 0.7, 0.2],    # u1: i5 ahead of i3 -> rank 2
    "i4": [0.6, 0.1, 0.2, 0.9, 0.6, 0.6],    # u2: tie with i1 (lower index) -> rank 2
    "i1": [0.8, 0.95, 0.1, 0.2, 0.3, 0.99],  # u3: i2, i6 excluded -> rank 1
    "i3": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],    # u4: target missing
}
BASELINE_Q = {"i2": [0, 0, 1, 0, 0, 0], "i4": [0, 0, 0, 0, 1, 0],
              "i1": [1, 0, 0, 0, 0, 0], "i3": [0, 0, 0, 0, 0, 0]}

LOG3 = math.log2(3)
# Candidate ranks [2, 2, 1, inf]; top lists (history left out):
#   u1 [i5, i3, i4, i6], u2 [i1, i5, i6, i3, i2], u3 [i5, i4, i3], u4 [i6, i5, i4, i2, i1]
EXPECTED_MODEL = {
    "HR@1": 0.25, "HR@3": 0.75, "HR@5": 0.75,
    "NDCG@1": 0.25, "NDCG@3": (2 / LOG3 + 1) / 4, "NDCG@5": (2 / LOG3 + 1) / 4,
    "MRR": (0.5 + 0.5 + 1) / 4,
    "coverage@1": 3 / 6, "coverage@3": 5 / 6, "coverage@5": 1.0,
    "num_users": 4, "num_missing_targets": 1,
}
# Popularity ranks [1, 4, 2, inf]; top lists:
#   u1 [i3, i4, i5, i6], u2 [i2, i3, i1, i5, i6], u3 [i3, i4, i5], u4 [i2, i1, i4, i5, i6]
EXPECTED_POPULARITY = {
    "HR@1": 0.25, "HR@3": 0.5, "HR@5": 0.75,
    "NDCG@1": 0.25, "NDCG@3": (1 + 1 / LOG3) / 4,
    "NDCG@5": (1 + 1 / math.log2(5) + 1 / LOG3) / 4,
    "MRR": (1 + 0.25 + 0.5) / 4,
    "coverage@1": 2 / 6, "coverage@3": 5 / 6, "coverage@5": 1.0,
    "num_users": 4, "num_missing_targets": 1,
}
# Baseline ranks [1, 1, 1, inf].
EXPECTED_BASELINE_NDCG3 = 0.75


def _info(count):
  """Self-information of an item with ``count`` of the 11 training interactions."""
  return math.log2(11 / count)


L = _info(1)  # i4; and i5, i6, unseen in training, count as seen once
# Top-3 lists above; diversity pairs without i4 (no attributes).
EXPECTED_MODEL_BEYOND = {
    "novelty@1": (L + _info(2) + L + L) / 4,
    "novelty@3": ((2 * L + _info(3)) / 3 + (_info(2) + 2 * L) / 3
                  + (2 * L + _info(3)) / 3 + L) / 4,
    # u1 (i5, i3) 1; u2 (i1, i5) .5, (i1, i6) 1, (i5, i6) .5; u3 (i5, i3) 1; u4 (i6, i5) .5.
    "diversity@3": (1 + 2 / 3 + 1 + 0.5) / 4,
}
# Model ranks by slice: <=3 [2, 2, inf], 4-7 [1], torso [2, 1], tail [2, inf],
# cold [2], warm [2, 1, inf].
EXPECTED_MODEL_SLICES_NDCG3 = {
    "history_len:<=3": 2 / LOG3 / 3, "history_len:4-7": 1.0,
    "popularity:torso": (1 / LOG3 + 1) / 2, "popularity:tail": 1 / LOG3 / 2,
    "cold_start:cold_items": 1 / LOG3, "cold_start:warm_items": (1 / LOG3 + 1) / 3,
}
EMPTY_SLICES = ["history_len:8-15", "history_len:>15", "popularity:head"]
# Popularity ranks by slice: tail [4, inf]; baseline: tail [1, inf].
TAIL_GATE = {"slice": "popularity:tail", "metric": "NDCG@3"}


class LastItemModel(tf.Module):
  """Query embedding = Q[last item of the history]; item embeddings = identity."""

  def __init__(self, item_ids, query_rows):
    super().__init__()
    keys = list(query_rows)
    self.item_ids = tf.constant(item_ids)
    self.item_vectors = tf.eye(len(item_ids))
    self.rows = tf.constant([query_rows[k] for k in keys] + [[0.0] * len(item_ids)],
                            tf.float32)
    self.table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(keys), tf.range(len(keys), dtype=tf.int64)),
        default_value=len(keys))

  @tf.function(input_signature=[
      tf.TensorSpec([None, None], tf.string, name=contract.INPUT_HISTORY)])
  def query_embedding(self, history):
    return {contract.OUTPUT_EMBEDDING: tf.gather(self.rows, self.table.lookup(history[:, -1]))}

  @tf.function(input_signature=[])
  def item_embeddings(self):
    return {contract.OUTPUT_ITEM_IDS: self.item_ids,
            contract.OUTPUT_EMBEDDINGS: self.item_vectors}


def _save_model(model_uri: str, query_rows) -> str:
  module = LastItemModel(ITEMS, query_rows)
  path = os.path.join(model_uri, path_constants.SERVING_MODEL_DIR)
  tf.saved_model.save(module, path, signatures={
      contract.QUERY_EMBEDDING_SIGNATURE: module.query_embedding.get_concrete_function(),
      contract.ITEM_EMBEDDINGS_SIGNATURE: module.item_embeddings.get_concrete_function()})
  return path


def _bytes_feature(values):
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode() for v in values]))


def _sequence_example(user, history, target):
  return tf.train.Example(features=tf.train.Features(feature={
      features.USER_ID: _bytes_feature([user]),
      features.HISTORY: _bytes_feature(history),
      features.TARGET: _bytes_feature([target]),
      features.ITEM_ID: _bytes_feature([""]),
      features.ITEM_ATTRIBUTES: _bytes_feature([]),
      features.TITLE: _bytes_feature([""]),
  }))


def _item_example(item):
  return tf.train.Example(features=tf.train.Features(feature={
      features.USER_ID: _bytes_feature([""]),
      features.HISTORY: _bytes_feature([]),
      features.TARGET: _bytes_feature([""]),
      features.ITEM_ID: _bytes_feature([item]),
      features.ITEM_ATTRIBUTES: _bytes_feature(ATTRIBUTES[item]),
      features.TITLE: _bytes_feature([f"title {item}"]),
  }))


def _write_split(directory, examples):
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(directory, "data_tfrecord-00000-of-00001.gz")
  with tf.io.TFRecordWriter(path, options="GZIP") as writer:
    for example in examples:
      writer.write(example.SerializeToString())
  return path


def _write_examples(root):
  splits = {
      features.TRAIN_SPLIT: [_sequence_example(*row) for row in TRAIN_ROWS],
      features.EVAL_SPLIT: [_sequence_example(*row) for row in TRAIN_ROWS],
      features.TEST_SPLIT: [_sequence_example(*row) for row in TEST_ROWS],
      features.ITEMS_SPLIT: [_item_example(item) for item in ITEMS],
  }
  for name, rows in splits.items():
    _write_split(os.path.join(root, f"Split-{name}"), rows)
  artifact = standard_artifacts.Examples()
  artifact.uri = root
  artifact.split_names = artifact_utils.encode_split_names(list(splits))
  return artifact


@pytest.fixture(scope="module")
def models(tmp_path_factory):
  root = tmp_path_factory.mktemp("models")
  candidate = standard_artifacts.Model()
  candidate.uri = str(root / "candidate")
  candidate.id = 11
  _save_model(candidate.uri, CANDIDATE_Q)
  baseline = standard_artifacts.Model()
  baseline.uri = str(root / "baseline")
  baseline.id = 7
  _save_model(baseline.uri, BASELINE_Q)
  return candidate, baseline


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
  return _write_examples(str(tmp_path_factory.mktemp("examples")))


def _run(tmp_path, examples, model, baseline=None, **properties):
  evaluation_artifact = standard_artifacts.ModelEvaluation()
  evaluation_artifact.uri = str(tmp_path / "evaluation")
  blessing = standard_artifacts.ModelBlessing()
  blessing.uri = str(tmp_path / "blessing")
  exec_properties = {"ks": json.dumps(KS), "gating_metric": "NDCG@3", "min_value": 0.0,
                     "must_beat_popularity": 1, "baseline_tolerance": 0.0, "batch_size": 2}
  exec_properties.update(properties)
  inputs = {"examples": [examples], "model": [model]}
  if baseline is not None:
    inputs["baseline_model"] = [baseline]
  executor.Executor().Do(inputs, {"evaluation": [evaluation_artifact], "blessing": [blessing]},
                         exec_properties)
  with open(os.path.join(evaluation_artifact.uri, executor.METRICS_FILE)) as f:
    result = json.load(f)
  return result, evaluation_artifact, blessing


def _marker_files(blessing):
  return sorted(os.listdir(blessing.uri))


def test_metrics_json_holds_hand_computed_model_and_popularity_metrics(tmp_path, examples,
                                                                       models):
  result, evaluation_artifact, _ = _run(tmp_path, examples, models[0])
  assert result["split"] == "test"
  assert result["num_items"] == 6
  assert result["model"] == pytest.approx(EXPECTED_MODEL)
  assert result["popularity"] == pytest.approx(EXPECTED_POPULARITY)
  assert "baseline" not in result
  assert evaluation_artifact.get_float_custom_property("NDCG@3") == pytest.approx(
      EXPECTED_MODEL["NDCG@3"])
  assert evaluation_artifact.get_float_custom_property("popularity/MRR") == pytest.approx(
      EXPECTED_POPULARITY["MRR"])


def test_one_batch_and_many_batches_give_the_same_metrics(tmp_path, examples, models):
  # Histories of different lengths share a batch: left padding keeps the last item last.
  result, _, _ = _run(tmp_path, examples, models[0], batch_size=512)
  assert result["model"] == pytest.approx(EXPECTED_MODEL)
  assert result["popularity"] == pytest.approx(EXPECTED_POPULARITY)


def test_blessed_above_min_value_and_popularity(tmp_path, examples, models):
  result, _, blessing = _run(tmp_path, examples, models[0], min_value=0.5)
  gating = result["gating"]
  assert gating["blessed"] is True and gating["reasons"] == []
  assert gating["metric"] == "NDCG@3"
  assert gating["value"] == pytest.approx(EXPECTED_MODEL["NDCG@3"])
  assert gating["min_value"] == 0.5
  assert _marker_files(blessing) == ["BLESSED"]
  assert os.path.getsize(os.path.join(blessing.uri, "BLESSED")) == 0
  assert blessing.get_int_custom_property("blessed") == 1
  assert model_utils.is_model_blessed(blessing)  # what the standard Pusher checks
  assert blessing.get_string_custom_property("current_model") == models[0].uri
  assert blessing.get_int_custom_property("current_model_id") == 11
  assert not blessing.has_custom_property("baseline_model")


def test_not_blessed_below_min_value(tmp_path, examples, models):
  result, _, blessing = _run(tmp_path, examples, models[0], min_value=0.6)
  assert result["gating"]["blessed"] is False
  assert len(result["gating"]["reasons"]) == 1
  assert "below min_value 0.6000" in result["gating"]["reasons"][0]
  assert _marker_files(blessing) == ["NOT_BLESSED"]
  assert blessing.get_int_custom_property("blessed") == 0
  assert not model_utils.is_model_blessed(blessing)
  assert "min_value" in blessing.get_string_custom_property("blessing_message")


def test_not_blessed_when_only_equal_to_popularity(tmp_path, examples, models):
  # HR@1 is 0.25 for both: not strictly better.
  result, _, blessing = _run(tmp_path, examples, models[0], gating_metric="HR@1")
  assert result["gating"]["blessed"] is False
  assert "popularity baseline (0.2500)" in result["gating"]["reasons"][0]
  assert _marker_files(blessing) == ["NOT_BLESSED"]
  assert blessing.get_int_custom_property("blessed") == 0
  # Without the popularity condition the same model is blessed.
  result, _, blessing = _run(tmp_path / "off", examples, models[0], gating_metric="HR@1",
                             must_beat_popularity=0)
  assert result["gating"]["blessed"] is True
  assert _marker_files(blessing) == ["BLESSED"]


def test_baseline_model_gates_with_tolerance(tmp_path, examples, models):
  candidate, baseline = models
  result, _, blessing = _run(tmp_path / "strict", examples, candidate, baseline)
  assert result["baseline"]["NDCG@3"] == pytest.approx(EXPECTED_BASELINE_NDCG3)
  assert result["baseline"]["HR@1"] == pytest.approx(0.75)
  assert result["gating"]["blessed"] is False
  assert "baseline model's 0.7500" in result["gating"]["reasons"][0]
  assert _marker_files(blessing) == ["NOT_BLESSED"]
  assert blessing.get_int_custom_property("blessed") == 0
  assert blessing.get_string_custom_property("baseline_model") == baseline.uri
  assert blessing.get_int_custom_property("baseline_model_id") == 7
  # 0.5655 >= 0.75 * (1 - 0.3) = 0.525.
  result, _, blessing = _run(tmp_path / "tolerant", examples, candidate, baseline,
                             baseline_tolerance=0.3)
  assert result["gating"]["blessed"] is True
  assert _marker_files(blessing) == ["BLESSED"]


def test_metrics_json_holds_slices_and_beyond_accuracy_metrics(tmp_path, examples, models):
  result, evaluation_artifact, _ = _run(tmp_path, examples, models[0])
  model_slices = result["slices"]["model"]
  names = ["history_len:<=3", "history_len:4-7", "history_len:8-15", "history_len:>15",
           "popularity:head", "popularity:torso", "popularity:tail",
           "cold_start:cold_items", "cold_start:warm_items"]
  assert sorted(model_slices) == sorted(names)
  assert {name: model_slices[name]["NDCG@3"] for name in EXPECTED_MODEL_SLICES_NDCG3} == \
      pytest.approx(EXPECTED_MODEL_SLICES_NDCG3)
  assert model_slices["popularity:tail"] == pytest.approx({
      "HR@1": 0.0, "HR@3": 0.5, "HR@5": 0.5, "NDCG@1": 0.0, "NDCG@3": 1 / LOG3 / 2,
      "NDCG@5": 1 / LOG3 / 2, "MRR": 0.25, "num_users": 2, "num_missing_targets": 1})
  assert [model_slices[name]["num_users"] for name in names] == [3, 1, 0, 0, 0, 2, 2, 1, 3]
  for name in EMPTY_SLICES:
    assert model_slices[name] == {"num_users": 0}
  assert result["slices"]["popularity"]["popularity:tail"]["NDCG@5"] == pytest.approx(
      1 / math.log2(5) / 2)
  beyond = result["beyond_accuracy"]["model"]
  assert {name: beyond[name] for name in EXPECTED_MODEL_BEYOND} == pytest.approx(
      EXPECTED_MODEL_BEYOND)
  assert "diversity@1" not in beyond                  # no pairs in a list of one
  assert result["beyond_accuracy"]["popularity"]["novelty@1"] == pytest.approx(
      (_info(3) + _info(4) + _info(3) + _info(4)) / 4)  # i3, i2, i3, i2
  assert evaluation_artifact.get_float_custom_property("novelty@3") == pytest.approx(
      EXPECTED_MODEL_BEYOND["novelty@3"])
  assert evaluation_artifact.has_custom_property("popularity/diversity@3")


def test_slice_gate_blesses_and_refuses(tmp_path, examples, models):
  candidate, baseline = models
  # Without a baseline, tail NDCG@3 0.3155 vs popularity's 0: blessed.
  result, _, blessing = _run(tmp_path / "popularity", examples, candidate,
                             slice_gates=json.dumps([{**TAIL_GATE, "max_drop": 0.0}]))
  assert result["gating"]["blessed"]
  assert result["gating"]["slice_gates"][0]["reference_value"] == 0.0
  assert _marker_files(blessing) == ["BLESSED"]
  # With a baseline (tail NDCG@3 0.5), overall within tolerance: the slice refuses.
  result, _, blessing = _run(tmp_path / "strict", examples, candidate, baseline,
                             baseline_tolerance=0.3,
                             slice_gates=json.dumps([{**TAIL_GATE, "max_drop": 0.1}]))
  assert result["slices"]["baseline"]["popularity:tail"]["NDCG@3"] == pytest.approx(0.5)
  assert result["gating"]["reasons"] == [
      "slice popularity:tail: NDCG@3 = 0.3155 is more than 0.1 below the baseline "
      "model's 0.5000"]
  assert _marker_files(blessing) == ["NOT_BLESSED"]
  assert "slice popularity:tail" in blessing.get_string_custom_property("blessing_message")
  result, _, blessing = _run(tmp_path / "tolerant", examples, candidate, baseline,
                             baseline_tolerance=0.3,
                             slice_gates=json.dumps([{**TAIL_GATE, "max_drop": 0.2}]))
  assert result["gating"]["blessed"]
  assert _marker_files(blessing) == ["BLESSED"]


def test_diversity_is_absent_without_item_attributes(examples, models):
  path = os.path.join(models[0].uri, path_constants.SERVING_MODEL_DIR)
  result = evaluation.evaluate_saved_model(path, examples.uri, ks=KS, with_popularity=False)
  assert not [name for name in result["beyond_accuracy"]["model"] if "diversity" in name]
  assert "novelty@3" in result["beyond_accuracy"]["model"]
  held_out = evaluation.evaluate_saved_model(path, examples.uri, ks=KS, with_popularity=False,
                                             cold_items={b"zz"})
  assert held_out["slices"]["model"]["cold_start:cold_items"]["num_users"] == 1
  assert held_out["slices"]["model"]["cold_start:cold_items"]["HR@5"] == 0.0  # u4: zz


# Text vectors: i5's text equals i4's (u2's only history item); i3's is the sum of i1's and
# i2's (u1's history). Text-similarity ranks (cosine to the history's mean vector):
#   u1 mean [0, .5, .5]: i3 1.0 -> rank 1
#   u2 mean [1, 0, 0]: i5 1.0 (i4 excluded) -> rank 1
#   u3 mean of i2, i6, i1 (qq has none) [1, 2, 1] / 3: i3 .866 ahead of the target i1 .816
#      -> rank 2
#   u4 target zz is not in the catalogue -> a miss
TEXT_VECTORS = {"i1": [0, 1, 0], "i2": [0, 0, 1], "i3": [0, 1, 1], "i4": [1, 0, 0],
                "i5": [1, 0, 0], "i6": [1, 1, 0]}
# Held out by the SequenceBuilder: i3 and i5, the targets of u1 and u2.
# Cold slice u1, u2: model [2, 2], popularity [1, 4], text [1, 1];
# warm slice u3, u4: model [1, inf], popularity [2, inf], text [2, inf].
HELD_OUT = [b"i3", b"i5"]


@pytest.fixture(scope="module")
def cold_examples(tmp_path_factory):
  artifact = _write_examples(str(tmp_path_factory.mktemp("cold_examples")))
  with open(os.path.join(artifact.uri, cold_items.COLD_ITEMS_FILE), "w") as f:
    f.write(cold_items.to_json(cold_items.ColdItemSelector(0.1, 0), HELD_OUT))
  return artifact


@pytest.fixture(scope="module")
def vectors_file(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("vectors") / "item_vectors.npz")
  np.savez(path, item_id=np.array(list(TEXT_VECTORS)),
           vector=np.array(list(TEXT_VECTORS.values()), np.float32))
  return path


def test_text_similarity_baseline_and_cold_slices_next_to_the_model(tmp_path, cold_examples,
                                                                    models, vectors_file):
  result, evaluation_artifact, _ = _run(tmp_path, cold_examples, models[0],
                                        item_vectors=vectors_file)
  text = result["text_similarity"]
  assert text["HR@1"] == pytest.approx(0.5)
  assert text["NDCG@3"] == pytest.approx((2 + 1 / LOG3) / 4)
  assert text["MRR"] == pytest.approx((1 + 1 + 0.5) / 4)
  assert text["num_missing_targets"] == 1
  assert result["model"] == pytest.approx(EXPECTED_MODEL)          # unchanged
  assert result["popularity"] == pytest.approx(EXPECTED_POPULARITY)
  assert result["cold_items"]["num_items"] == 2
  assert result["notes"] == []
  cold, warm = "cold_start:cold_items", "cold_start:warm_items"
  by_scorer = {name: result["slices"][name] for name in ("model", "popularity",
                                                         "text_similarity")}
  assert {name: (s[cold]["num_users"], s[warm]["num_users"])
          for name, s in by_scorer.items()} == {name: (2, 2) for name in by_scorer}
  assert by_scorer["model"][cold]["NDCG@3"] == pytest.approx(1 / LOG3)
  assert by_scorer["popularity"][cold]["NDCG@3"] == pytest.approx(0.5)
  assert by_scorer["text_similarity"][cold]["NDCG@3"] == pytest.approx(1.0)
  assert by_scorer["model"][warm]["NDCG@3"] == pytest.approx(0.5)
  assert by_scorer["text_similarity"][warm]["NDCG@3"] == pytest.approx(1 / LOG3 / 2)
  assert evaluation_artifact.get_float_custom_property(
      "text_similarity/NDCG@3") == pytest.approx(text["NDCG@3"])
  # The report's slice table carries every scorer.
  report = evaluation.format_report(result, KS)
  assert "  popularity  text_similarity" in report.splitlines()[0]   # columns apart
  assert cold in report


def test_without_item_vectors_the_text_baseline_is_skipped_with_a_note(tmp_path, cold_examples,
                                                                      models):
  result, evaluation_artifact, _ = _run(tmp_path, cold_examples, models[0])
  assert "text_similarity" not in result and "text_similarity" not in result["slices"]
  assert result["notes"] == [evaluation.NO_TEXT_VECTORS_NOTE]
  assert not evaluation_artifact.has_custom_property("text_similarity/NDCG@3")
  # The held-out items still define the cold slice (not "no training interactions": u2 only).
  assert result["slices"]["model"]["cold_start:cold_items"]["num_users"] == 2


def test_text_similarity_ties_count_against_it():
  scorer = evaluation.TextSimilarityScorer(
      {b"a": np.array([1.0, 0.0]), b"b": np.array([1.0, 0.0]), b"c": np.array([0.0, 1.0])},
      [b"a", b"b", b"c", b"d"])
  # b ties a exactly; d has no vector and c is orthogonal: both score 0.
  np.testing.assert_allclose(scorer.scores([[b"a"], [b"x"]]), [[1, 1, 0, 0], [0, 0, 0, 0]])
  # Tied candidates with a lower catalogue index rank ahead of the target (the protocol).
  rows = [evaluation.SequenceRow(b"u", (b"c",), b"b"),   # a ties b at 0: rank 2
          evaluation.SequenceRow(b"v", (b"x",), b"d"),   # no vector in the history: all tie
          evaluation.SequenceRow(b"w", (b"a",), b"d")]   # b above, c tied: rank 3
  ranks = evaluation.rank_rows(scorer, rows, k=2).ranks
  assert ranks.tolist() == [2.0, 4.0, 3.0]


def test_evaluate_saved_model_reads_a_split_pattern(tmp_path, examples, models):
  pattern = os.path.join(examples.uri, "Split-{split}", "*.gz")
  path = os.path.join(models[0].uri, path_constants.SERVING_MODEL_DIR)
  result = evaluation.evaluate_saved_model(path, pattern, ks=KS, batch_size=3)
  assert result["model"] == pytest.approx(EXPECTED_MODEL)
  assert result["popularity"] == pytest.approx(EXPECTED_POPULARITY)
  by_dir = evaluation.evaluate_saved_model(path, examples.uri, ks=KS, with_popularity=False)
  assert by_dir["model"] == pytest.approx(EXPECTED_MODEL)
  assert "popularity" not in by_dir


def test_row_without_target_is_reported_with_file_and_record(tmp_path, models):
  root = tmp_path / "bad"
  bad = tf.train.Example(features=tf.train.Features(feature={
      features.USER_ID: _bytes_feature(["u9"]),
      features.HISTORY: _bytes_feature(["i1"])}))
  path = _write_split(str(root / "Split-test"), [_sequence_example(*TEST_ROWS[0]), bad])
  model_path = os.path.join(models[0].uri, path_constants.SERVING_MODEL_DIR)
  with pytest.raises(ValueError) as error:
    evaluation.evaluate_saved_model(model_path, str(root), with_popularity=False)
  message = str(error.value)
  assert path in message and "record 1" in message and "'u9'" in message
  assert "'target'" in message


def test_missing_split_names_the_splits_that_exist(tmp_path, examples, models):
  with pytest.raises(ValueError, match=r"no split 'validation'.*'test'"):
    _run(tmp_path, examples, models[0], eval_split="validation")


def test_component_spec_has_standard_evaluator_channels():
  examples = channel.Channel(type=standard_artifacts.Examples)
  model = channel.Channel(type=standard_artifacts.Model)
  evaluator = component.RankingEvaluator(examples=examples, model=model, ks=[5, 10],
                                         gating_metric="HR@5", min_value=0)
  assert set(evaluator.inputs) == {"examples", "model"}
  assert evaluator.outputs["blessing"].type == standard_artifacts.ModelBlessing
  assert evaluator.outputs["evaluation"].type == standard_artifacts.ModelEvaluation
  properties = evaluator.exec_properties
  assert json.loads(properties[component_spec.KS_KEY]) == [5, 10]
  assert properties["gating_metric"] == "HR@5"
  assert properties["min_value"] == 0.0 and isinstance(properties["min_value"], float)
  assert properties["must_beat_popularity"] == 1
  assert properties["eval_split"] == "test"
  assert properties["batch_size"] == 512
  assert json.loads(properties["slice_gates"]) == []
  assert evaluator.EXECUTOR_SPEC.executor_class is executor.Executor
  with_baseline = component.RankingEvaluator(
      examples=examples, model=model,
      baseline_model=channel.Channel(type=standard_artifacts.Model))
  assert with_baseline.inputs["baseline_model"].type == standard_artifacts.Model
  assert with_baseline.exec_properties["gating_metric"] == "NDCG@10"
  assert with_baseline.exec_properties["item_vectors"] is None
  with_text = component.RankingEvaluator(examples=examples, model=model,
                                         item_vectors="/data/item_vectors.parquet")
  assert with_text.exec_properties["item_vectors"] == "/data/item_vectors.parquet"


def test_component_checks_its_slice_gates():
  gate = {"slice": "popularity:tail", "metric": "NDCG@10", "max_drop": 0.05}
  evaluator = component.RankingEvaluator(
      examples=channel.Channel(type=standard_artifacts.Examples),
      model=channel.Channel(type=standard_artifacts.Model), slice_gates=[gate])
  assert json.loads(evaluator.exec_properties["slice_gates"]) == [gate]
  with pytest.raises(ValueError, match="unknown slice"):
    component.RankingEvaluator(
        examples=channel.Channel(type=standard_artifacts.Examples),
        model=channel.Channel(type=standard_artifacts.Model),
        slice_gates=[{**gate, "slice": "tail"}])


def test_component_rejects_a_gating_metric_that_is_not_computed():
  with pytest.raises(ValueError, match="NDCG@10"):
    component.RankingEvaluator(
        examples=channel.Channel(type=standard_artifacts.Examples),
        model=channel.Channel(type=standard_artifacts.Model), ks=[5, 20])
