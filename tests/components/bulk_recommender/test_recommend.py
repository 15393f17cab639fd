"""The bulk job's model call: the signature and its further inputs are parameters."""

import os

import apache_beam as beam
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from components.bulk_recommender import recommend
from components.bulk_recommender import saved_model
from serving import contract
from serving.testing import toy_model

NUM_ITEMS = 20
RULES_SIGNATURE = "recommend_rules"
HISTORIES = [("a", ("item_0", "item_1")), ("b", ("item_5",)), ("c", ())]


class RulesToy(toy_model.ToyRecommender):
  """The toy model plus a signature with a per-row exclusion list and a history switch."""

  def _mask(self, scores: tf.Tensor, indices: tf.RaggedTensor) -> tf.Tensor:
    rows = tf.cast(indices.value_rowids(), tf.int64)
    seen = tf.stack([rows, indices.values], axis=1)
    return tf.tensor_scatter_nd_update(
        scores, seen, tf.fill(tf.shape(rows), tf.constant(-np.inf, tf.float32)))

  @tf.function(input_signature=[
      tf.TensorSpec([None, None], tf.string, name=contract.INPUT_HISTORY),
      tf.TensorSpec([], tf.int32, name=contract.INPUT_K),
      tf.TensorSpec([None, None], tf.string, name="exclude"),
      tf.TensorSpec([], tf.bool, name="exclude_history")])
  def recommend_rules(self, history, k, exclude, exclude_history):
    indices = self._indices(history)
    scores = tf.matmul(self._query(indices), self.embeddings, transpose_b=True)
    scores = self._mask(scores, self._indices(exclude))
    scores = tf.cond(exclude_history, lambda: self._mask(scores, indices), lambda: scores)
    top = tf.math.top_k(scores, k=tf.minimum(k, self.num_items))
    return {contract.OUTPUT_ITEM_IDS: tf.gather(self.ids, top.indices),
            contract.OUTPUT_SCORES: top.values}


@pytest.fixture(scope="module")
def rules_model(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("rules_model"))
  module = RulesToy(toy_model.toy_item_ids(NUM_ITEMS), toy_model.toy_embeddings(NUM_ITEMS, 8, 0))
  tf.saved_model.save(module, path, signatures={
      contract.DEFAULT_SIGNATURE: module.recommend.get_concrete_function(),
      RULES_SIGNATURE: module.recommend_rules.get_concrete_function()})
  return path


def _expected(history, k, exclude, exclude_history):
  ids = toy_model.toy_item_ids(NUM_ITEMS)
  embeddings = toy_model.toy_embeddings(NUM_ITEMS, 8, 0)
  known = [ids.index(i) for i in history]
  query = embeddings[known].mean(axis=0) if known else np.zeros(8, np.float32)
  scores = embeddings @ query
  scores[[ids.index(i) for i in exclude if i in ids]] = -np.inf
  if exclude_history:
    scores[known] = -np.inf
  return [ids[i] for i in np.argsort(-scores, kind="stable")[:k]]


def _run(model, tmp_path, **settings):
  settings = recommend.BulkSettings(model_dir=model, output_format="csv", **settings)
  result = recommend.run(settings, beam.Create(HISTORIES), str(tmp_path))
  table = pd.concat(pd.read_csv(f, dtype=str, keep_default_na=False) for f in result.files)
  return result, table


@pytest.mark.parametrize("exclude_history", [True, False])
def test_a_rules_signature_gets_its_inputs_for_every_user(rules_model, tmp_path,
                                                          exclude_history):
  exclude = ["item_2", "item_9", "not_in_catalogue"]
  result, table = _run(rules_model, tmp_path, k=4, signature=RULES_SIGNATURE,
                       extra_inputs={"exclude": exclude, "exclude_history": exclude_history})
  assert result.users == len(HISTORIES) and result.rows == len(table) == len(HISTORIES) * 4
  for user, history in HISTORIES:
    got = table.loc[table.user_id == user].sort_values("rank", key=lambda r: r.astype(int))
    assert got["item_id"].tolist() == _expected(history, 4, exclude, exclude_history)


def test_the_signature_inputs_are_checked_before_the_run(rules_model):
  with pytest.raises(saved_model.ModelError, match=r"extra inputs missing: \['exclude'\]"):
    saved_model.signature_inputs(rules_model, RULES_SIGNATURE, {"exclude_history": True})
  with pytest.raises(saved_model.ModelError, match=r"unknown: \['allow'\]"):
    saved_model.signature_inputs(rules_model, contract.DEFAULT_SIGNATURE, {"allow": []})
  specs = saved_model.signature_inputs(rules_model, RULES_SIGNATURE,
                                       {"exclude": [], "exclude_history": True})
  assert specs == {"exclude": saved_model.InputSpec(tf.string, 2),
                   "exclude_history": saved_model.InputSpec(tf.bool, 0)}


def test_per_row_inputs_are_repeated_for_every_row():
  specs = {"exclude": saved_model.InputSpec(tf.string, 2),
           "weight": saved_model.InputSpec(tf.float32, 0)}
  tensors = saved_model.request_tensors(specs, {"exclude": [], "weight": 0.5}, 3)
  assert tensors["exclude"].shape == (3, 0) and tensors["weight"].numpy() == 0.5
  tensors = saved_model.request_tensors(specs, {"exclude": ["x", "y"], "weight": 1}, 2)
  assert tensors["exclude"].numpy().tolist() == [[b"x", b"y"], [b"x", b"y"]]


def test_the_newest_version_of_a_serving_base_is_used(tmp_path):
  for version in ("3", "10", "9"):
    toy_model.export_toy_model(str(tmp_path / version), num_items=5)
  os.makedirs(tmp_path / "11")   # no saved_model.pb yet: a push in progress
  assert saved_model.resolve_model_dir(str(tmp_path)) == str(tmp_path / "10")
