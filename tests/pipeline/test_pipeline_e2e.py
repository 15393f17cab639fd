"""End to end: the TFX pipeline on tiny synthetic data trains, evaluates, pushes a servable model."""

import json
import os

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from components.ranking_evaluator import slices
from pipeline import local_runner
from tests import lineage
from serving import contract


def test_run_beats_popularity_and_pushes(tiny_run):
  config, summary = tiny_run
  model, popularity = summary["evaluation"]["model"], summary["evaluation"]["popularity"]
  assert summary["evaluation"]["gating"]["blessed"]
  assert model["NDCG@10"] > popularity["NDCG@10"]
  assert summary["pushed"]
  version = os.path.basename(summary["pushed_destination"])
  assert os.listdir(config.serving_model_dir) == [version]
  assert summary["sequences"]["num_users_kept"] == model["num_users"]


def test_run_reports_every_slice_novelty_and_diversity(tiny_run):
  _, summary = tiny_run
  evaluation = summary["evaluation"]
  users = evaluation["model"]["num_users"]
  for scorer in ("model", "popularity"):
    by_slice = evaluation["slices"][scorer]
    assert set(by_slice) == set(slices.slice_names())
    for family in (slices.HISTORY_LENGTH, slices.POPULARITY, slices.COLD_START):
      assert sum(row["num_users"] for name, row in by_slice.items()
                 if name.startswith(family + ":")) == users
    assert {"novelty@10", "diversity@10"} <= set(evaluation["beyond_accuracy"][scorer])
  assert evaluation["gating"]["slice_gates"] == []


@pytest.fixture(scope="module")
def served(pushed_model_path):
  return tf.saved_model.load(pushed_model_path)


@pytest.fixture(scope="module")
def catalogue(served):
  ids = served.signatures[contract.ITEM_EMBEDDINGS_SIGNATURE]()[contract.OUTPUT_ITEM_IDS]
  return [i.decode() for i in ids.numpy()]


def _recommend(model, histories, k):
  width = max(len(h) for h in histories)
  padded = [[contract.PAD] * (width - len(h)) + list(h) for h in histories]
  out = model.signatures[contract.DEFAULT_SIGNATURE](
      history=tf.constant(padded, tf.string), k=tf.constant(k, tf.int32))
  return ([[i.decode() for i in row] for row in out[contract.OUTPUT_ITEM_IDS].numpy()],
          out[contract.OUTPUT_SCORES].numpy())


def test_pushed_model_answers_raw_ids_and_never_returns_history(served, catalogue):
  history = catalogue[:5]
  ids, scores = _recommend(served, [history, catalogue[5:6]], k=10)
  assert len(ids) == 2 and all(len(row) == 10 for row in ids)
  assert not set(ids[0]) & set(history)
  assert catalogue[5] not in ids[1]
  assert set(ids[0]) <= set(catalogue)
  assert np.all(np.diff(scores, axis=1) <= 0)  # best first


def test_padding_position_and_unknown_ids_do_not_change_the_answer(served, catalogue):
  history = catalogue[10:14]
  plain, _ = _recommend(served, [history], k=5)
  out = served.signatures[contract.DEFAULT_SIGNATURE](
      history=tf.constant([history[:2] + ["", "never-seen-item"] + history[2:] + [""]]),
      k=tf.constant(5, tf.int32))
  assert [i.decode() for i in out[contract.OUTPUT_ITEM_IDS].numpy()[0]] == plain[0]


def test_scores_match_query_and_item_embeddings(served, catalogue):
  history = tf.constant([catalogue[3:9]])
  query = served.signatures[contract.QUERY_EMBEDDING_SIGNATURE](history=history)[
      contract.OUTPUT_EMBEDDING].numpy()
  items = served.signatures[contract.ITEM_EMBEDDINGS_SIGNATURE]()[
      contract.OUTPUT_EMBEDDINGS].numpy()
  ids, scores = _recommend(served, [catalogue[3:9]], k=3)
  expected = query @ items.T
  np.testing.assert_allclose(scores[0], [expected[0, catalogue.index(i)] for i in ids[0]],
                             rtol=1e-4, atol=1e-4)


def test_k_past_the_catalogue_pads_with_empty_ids_instead_of_history(served, catalogue):
  history = catalogue[:2]
  ids, scores = _recommend(served, [history], k=len(catalogue) + 50)
  assert len(ids[0]) == len(catalogue)
  assert sorted(ids[0][:-2]) == sorted(catalogue[2:])
  assert ids[0][-2:] == ["", ""] and np.all(np.isneginf(scores[0][-2:]))


def test_bulk_recommendations_give_every_user_k_items_outside_their_history(tiny_run):
  config, summary = tiny_run
  bulk = summary["bulk_recommendations"]
  users, k = summary["sequences"]["num_users_kept"], config.bulk_recommendations.k
  assert (bulk["users"], bulk["rows"], bulk["k"]) == (users, users * k, k)
  table = pd.concat(pd.read_csv(path, dtype=str, keep_default_na=False)
                    for path in tf.io.gfile.glob(os.path.join(bulk["uri"], "*.csv")))
  assert len(table) == users * k and table["user_id"].nunique() == users
  events = pd.read_csv(os.path.join(config.interactions_root, "interactions.csv"), dtype=str)
  seen = set(zip(events["user_id"], events["item_id"]))
  assert not [row for row in zip(table["user_id"], table["item_id"]) if row in seen]


def test_bad_input_file_stops_before_the_pipeline_with_a_clear_error(tmp_path, capsys):
  log = tmp_path / "log.csv"
  log.write_text("user_id,item_id\n1,2\n")
  code = local_runner.main(["--dataset", "csv", "--data-dir", str(log),
                            "--output-dir", str(tmp_path / "out")])
  err = capsys.readouterr().err
  assert code == 1
  assert "timestamp" in err and str(log) in err
  assert not (tmp_path / "out" / "tfx").exists()


def test_fine_tuning_starts_from_the_pretrained_encoder(tiny_run):
  config, summary = tiny_run
  mlmd = lineage.store(config.metadata_path)
  evaluator = lineage.last_execution(mlmd, "RankingEvaluator")
  evaluated = lineage.artifacts_by_key(mlmd, evaluator, lineage.INPUT)["model"][0]
  fine_tune = lineage.producer(mlmd, "Trainer", evaluated)
  base = lineage.artifacts_by_key(mlmd, fine_tune, lineage.INPUT)["base_model"]
  pretrain = lineage.producer(mlmd, "Trainer", base[0])
  assert pretrain.id != fine_tune.id
  [pretrained] = mlmd.get_artifacts_by_id(base)
  # The pre-training run logged every enabled objective's loss, and they fell.
  [run] = [a for a in mlmd.get_artifacts_by_id(
      lineage.artifacts_by_key(mlmd, pretrain, lineage.OUTPUT)["model_run"])]
  history = json.load(open(os.path.join(run.uri, "history.json")))
  for name in ("masked_item_loss", "attribute_loss", "contrastive_loss", "clustering_loss"):
    assert len(history[name]) == 2, name
  assert history["loss"][-1] < history["loss"][0]
  assert os.path.isdir(os.path.join(pretrained.uri, "warm_start"))
