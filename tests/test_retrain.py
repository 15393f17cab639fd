"""Nightly retraining on daily spans: warm start, baseline-gated push, idempotence, lineage."""

import json
import os

import numpy as np
import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline import local_runner
from pipeline.ingest import synthetic
from tests.conftest import TINY_MODEL_CONFIG


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


def _retrain(days, out, day, span, capsys):
  code = local_runner.main([
      "--dataset", "csv", "--data-dir", days[day], "--items", days["items"],
      "--span", str(span), "--span-window", "3", "--output-dir", str(out),
      "--pipeline-name", "seqrec-nightly", "--model-config", TINY_MODEL_CONFIG,
      "--min-interactions", "3"])
  assert code == 0
  return capsys.readouterr().out


def _versions(out):
  base = os.path.join(out, "serving", "seqrec")
  return sorted(int(v) for v in os.listdir(base) if v.isdigit()) if os.path.isdir(base) else []


def _latest_metrics(out):
  state = json.load(open(os.path.join(out, "retrain_state.json")))
  return state


def _store(out):
  config = metadata_store_pb2.ConnectionConfig()
  config.sqlite.filename_uri = os.path.join(out, "metadata", "seqrec-nightly", "metadata.db")
  return metadata_store.MetadataStore(config)


def _last_execution(store, type_suffix):
  executions = [e for e in store.get_executions()
                if store.get_execution_types_by_id([e.type_id])[0].name.endswith(type_suffix)]
  return max(executions, key=lambda e: e.id)


def _artifacts_by_key(store, execution, kind):
  found = {}
  for event in store.get_events_by_execution_ids([execution.id]):
    if event.type == kind:
      found.setdefault(event.path.steps[0].key, []).append(event.artifact_id)
  return found


def test_nightly_retrain_warm_starts_gates_on_baseline_and_is_idempotent(days, tmp_path, capsys):
  out = str(tmp_path / "nightly")

  first = _retrain(days, out, "day1", 1, capsys)
  assert "BLESSED" in first
  [v1] = _versions(out)

  second = _retrain(days, out, "day2", 2, capsys)
  store = _store(out)
  trainer = _last_execution(store, "Trainer")
  evaluator = _last_execution(store, "RankingEvaluator")
  pusher = _last_execution(store, "Pusher")
  trainer_in = _artifacts_by_key(store, trainer, metadata_store_pb2.Event.INPUT)
  trainer_out = _artifacts_by_key(store, trainer, metadata_store_pb2.Event.OUTPUT)
  evaluator_in = _artifacts_by_key(store, evaluator, metadata_store_pb2.Event.INPUT)
  evaluator_out = _artifacts_by_key(store, evaluator, metadata_store_pb2.Event.OUTPUT)
  pusher_in = _artifacts_by_key(store, pusher, metadata_store_pb2.Event.INPUT)
  # Lineage: the served model is both the warm start and the evaluator's baseline;
  # the new model is evaluated, and the push consumes that model and its blessing.
  baseline_id = trainer_in["base_model"][0]
  assert evaluator_in["baseline_model"] == [baseline_id]
  assert evaluator_in["model"] == trainer_out["model"]
  assert pusher_in["model"] == trainer_out["model"]
  assert pusher_in["model_blessing"] == evaluator_out["blessing"]
  assert baseline_id != trainer_out["model"][0]
  state = _latest_metrics(out)
  versions = _versions(out)
  if state["2"]["blessed"]:
    assert versions[0] == v1 and len(versions) == 2 and versions[1] > v1
  else:
    assert versions == [v1]

  again = _retrain(days, out, "day2", 2, capsys)
  assert "Nothing to do" in again
  assert _versions(out) == versions

  corrupted = _retrain(days, out, "day3", 3, capsys)
  assert "NOT BLESSED" in corrupted
  assert "pushed: nothing" in corrupted
  assert _versions(out) == versions
  assert json.load(open(os.path.join(out, "retrain_state.json")))["3"]["pushed"] is False
