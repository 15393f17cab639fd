"""Nightly retraining on daily spans: warm start, baseline-gated push, idempotence, lineage."""

import json
import os

import numpy as np
import pytest

from pipeline.ingest import synthetic
from tests import cli
from tests import lineage
from tests.conftest import TINY_MODEL_CONFIG
from tests.conftest import TINY_PRETRAIN_CONFIG


@pytest.fixture(scope="module")
def days(tmp_path_factory):
  """Tiny synthetic log in three daily spans, the third corrupted.

  Day 1 holds all but each user's last 5 events, day 2 the next 2, day 3 the last
  3 (so every validation and test target lies in day 3), with item ids shuffled
  across its rows: the sequences are destroyed while item counts stay the same,
  so no model can beat popularity on it.
  """
  root = tmp_path_factory.mktemp("days")
  log, items = synthetic.generate(synthetic.SyntheticConfig.tiny())
  log = log.sort_values(["user_id", "timestamp", "item_id"], kind="stable")
  from_end = log.groupby("user_id").cumcount(ascending=False)
  day1, day2, day3 = log[from_end >= 5], log[(from_end >= 3) & (from_end < 5)], log[from_end < 3].copy()
  day3["item_id"] = np.random.default_rng(0).permutation(day3["item_id"].to_numpy())
  paths = {}
  for name, frame in (("day1", day1), ("day2", day2), ("day3", day3)):
    paths[name] = str(root / f"{name}.csv")
    frame.to_csv(paths[name], index=False)
  paths["items"] = str(root / "items.csv")
  items.to_csv(paths["items"], index=False)
  return paths


def _retrain(days, out, day, span):
  """One nightly run of ``day``'s log (its own process); its printed output."""
  result = cli.run_module(
      "pipeline.local_runner",
      "--dataset", "csv", "--data-dir", days[day], "--items", days["items"],
      "--span", str(span), "--span-window", "3", "--output-dir", str(out),
      "--pipeline-name", "seqrec-nightly", "--model-config", TINY_MODEL_CONFIG,
      "--pretrain-config", TINY_PRETRAIN_CONFIG, "--min-interactions", "3",
      # The drift gate runs but cannot fire: these days differ in events per user by
      # construction (tests/pipeline/test_nightly_drift.py stops on drift).
      "--drift-config", '{"max_item_distance": 1.0, "max_events_per_user_ratio": 1000}')
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout


def _versions(out):
  base = os.path.join(out, "serving", "seqrec")
  return sorted(int(v) for v in os.listdir(base) if v.isdigit()) if os.path.isdir(base) else []


def _state(out) -> dict:
  with open(os.path.join(out, "retrain_state.json")) as f:
    return json.load(f)


def _served(out, version: int) -> str:
  return os.path.join(out, "serving", "seqrec", str(version))


def _evaluated_and_baseline(out) -> tuple:
  """(id of the Model the last run's RankingEvaluator evaluated, [id of its baseline])."""
  store = lineage.store(os.path.join(out, "metadata", "seqrec-nightly", "metadata.db"))
  evaluator_in = lineage.artifacts_by_key(
      store, lineage.last_execution(store, "RankingEvaluator"), lineage.INPUT)
  return evaluator_in["model"][0], evaluator_in["baseline_model"]


def test_nightly_retrain_warm_starts_gates_on_baseline_and_is_idempotent(days, tmp_path):
  out = str(tmp_path / "nightly")

  first = _retrain(days, out, "day1", 1)
  assert "BLESSED" in first and "NOT BLESSED" not in first
  [v1] = _versions(out)
  assert _state(out)["1"] == {**_state(out)["1"], "blessed": True, "pushed": True,
                              "pushed_destination": _served(out, v1)}

  second = _retrain(days, out, "day2", 2)
  store = lineage.store(os.path.join(out, "metadata", "seqrec-nightly", "metadata.db"))
  evaluator = lineage.last_execution(store, "RankingEvaluator")
  pusher = lineage.last_execution(store, "Pusher")
  evaluator_in = lineage.artifacts_by_key(store, evaluator, lineage.INPUT)
  evaluator_out = lineage.artifacts_by_key(store, evaluator, lineage.OUTPUT)
  pusher_in = lineage.artifacts_by_key(store, pusher, lineage.INPUT)
  trainer = lineage.producer(store, "Trainer", evaluator_in["model"][0])
  trainer_in = lineage.artifacts_by_key(store, trainer, lineage.INPUT)
  trainer_out = lineage.artifacts_by_key(store, trainer, lineage.OUTPUT)
  pretrainer = lineage.producer(store, "Trainer", trainer_in["base_model"][0])
  pretrainer_in = lineage.artifacts_by_key(store, pretrainer, lineage.INPUT)
  # Lineage: the served model is the pre-training's warm start and the evaluator's
  # baseline; fine-tuning starts from the pre-trained encoder; the new model is
  # evaluated, and the push consumes that model and its blessing.
  assert pretrainer.id != trainer.id
  baseline_id = pretrainer_in["base_model"][0]
  assert evaluator_in["baseline_model"] == [baseline_id]
  assert evaluator_in["model"] == trainer_out["model"]
  assert pusher_in["model"] == trainer_out["model"]
  assert pusher_in["model_blessing"] == evaluator_out["blessing"]
  assert baseline_id != trainer_out["model"][0]
  # Day 2 holds every user's test target, which version 1 never saw and the new
  # model trained next to: it beats both popularity and the served model, and is pushed.
  assert "NOT BLESSED" not in second and "BLESSED" in second
  versions = _versions(out)
  assert len(versions) == 2 and versions[0] == v1 and versions[1] > v1
  v2 = versions[1]
  assert f"pushed: {_served(out, v2)}" in second
  assert _state(out)["2"] == {**_state(out)["2"], "blessed": True, "pushed": True,
                              "pushed_destination": _served(out, v2)}
  day2_model = trainer_out["model"][0]

  again = _retrain(days, out, "day2", 2)
  assert "Nothing to do" in again
  assert _versions(out) == versions

  # Day 3's item ids are shuffled: the gate refuses its model against the model
  # served since day 2, which stays the newest version.
  corrupted = _retrain(days, out, "day3", 3)
  assert "NOT BLESSED" in corrupted
  assert "pushed: nothing" in corrupted
  assert _versions(out) == [v1, v2]
  day3_model, day3_baseline = _evaluated_and_baseline(out)
  assert day3_baseline == [day2_model] and day3_model != day2_model
  state = _state(out)
  assert state["3"] == {**state["3"], "blessed": False, "pushed": False,
                        "pushed_destination": None}
  assert state["2"]["pushed_destination"] == _served(out, max(_versions(out)))
