"""bench.serving.trained: a short run on a small rules model, and its bars."""

import json
import os

import pytest
import tensorflow as tf

from bench.serving import load
from bench.serving import rules
from bench.serving import trained
from serving import client as client_lib
from serving import contract
from trainer import features

NUM_ITEMS = 40


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  """A rules model with its attribute vocabulary as an asset, as a pipeline export has."""
  export_dir = rules.export_rules_model(str(tmp_path_factory.mktemp("trained") / "1"), NUM_ITEMS)
  values, _ = rules.catalogue_attributes(NUM_ITEMS)
  with open(os.path.join(export_dir, "assets", features.ATTRIBUTE_VOCAB), "w") as f:
    f.write("".join(f"{v}\n" for v in values))
  return export_dir


def test_rules_request_requires_the_last_items_first_attribute(model_dir):
  loaded = tf.saved_model.load(model_dir)
  catalogue = [f"item_{j}" for j in range(NUM_ITEMS)]
  values, rows = rules.catalogue_attributes(NUM_ITEMS)
  sent = []

  class Recorder:
    def recommend_with_rules(self, batch, k, rules_rows):
      sent.extend(rules_rows)

  call = trained.rules_call(loaded, model_dir, catalogue, seed=0)
  call(Recorder(), [["item_1", "item_7"], []], 10)
  assert sent[0].require_attributes == [values[min(rows[7])]]
  assert sent[1].require_attributes == []
  assert len(set(sent[0].exclude)) == trained.EXCLUDED_IDS
  counts = [sum(v in row for row in rows) for v in range(len(values))]
  rarest = values[counts.index(min(counts))]
  assert sent[1].exclude_attributes == [rarest]   # never the value the row requires
  assert sent[0].exclude_attributes == ([] if sent[0].require_attributes == [rarest]
                                        else [rarest])


def test_run_measures_every_path_on_the_same_answers(model_dir, tmp_path):
  code = trained.main(["--model-path", os.path.dirname(model_dir), "--requests", "10",
                       "--concurrency", "1", "2", "--history-length", "5", "-k", "4",
                       "--warmup", "1", "--out-dir", str(tmp_path), "--label", "run"])
  assert code == 0
  report = json.loads((tmp_path / "run.json").read_text())
  assert report["identical_answers"] and report["catalogue_size"] == NUM_ITEMS
  assert [(r["path"], r["signature"], r["concurrency"]) for r in report["results"]] == [
      (path, signature, c)
      for path, signatures in (("in-process", ("serving_default", "recommend-rules")),
                               ("grpc", ("serving_default", "recommend-rules")),
                               ("rest", ("serving_default",)))
      for signature in signatures for c in (1, 2)]
  assert all(r["requests"] == 10 and r["errors"] == 0 for r in report["results"])
  assert report["machine"]["cores"] in ("alone", "shared")
  assert "avx" in report["machine"]["cpu_flags"] or report["machine"]["cpu_flags"] == []
  text = (tmp_path / "run.md").read_text()
  assert f"**{report['machine']['cores']}**" in text and "| grpc | recommend-rules | 2 |" in text


def _level(path, signature, concurrency, p99, rps=100.0):
  return {"path": path, "signature": signature, "concurrency": concurrency, "p99_ms": p99,
          "throughput_rps": rps}


def test_bars_compare_rules_with_serving_default_on_the_same_path_and_level():
  checks = trained.bars([
      _level("grpc", contract.DEFAULT_SIGNATURE, 1, 8.0),
      _level("grpc", "recommend-rules", 1, 13.0),
      _level("grpc", contract.DEFAULT_SIGNATURE, 8, 20.0, rps=600.0),
      _level("grpc", "recommend-rules", 8, 21.0)])
  met = {c["what"]: c["met"] for c in checks}
  assert met["gRPC serving_default p99 at concurrency 1 (bar)"]
  assert not met["gRPC serving_default p99 at concurrency 1 (goal)"]
  assert met["gRPC serving_default throughput at concurrency 8 (goal)"]
  assert not met["grpc recommend-rules p99 / serving_default p99 at concurrency 1 (bar)"]
  assert met["grpc recommend-rules p99 / serving_default p99 at concurrency 8 (bar)"]


def test_sharing_marks_a_busy_machine():
  assert load.sharing(0.2, 2) == "alone"
  assert load.sharing(1.5, 2) == "shared"


def test_in_process_client_answers_as_the_grpc_client_would(model_dir):
  local = trained.InProcessRecommender(tf.saved_model.load(model_dir))
  plain = local.recommend_details([["item_1", "item_2"]], 3)
  ruled = local.recommend_with_rules([["item_1", "item_2"]], 3,
                                     [client_lib.Rules(exclude=[plain.items[0][0][0]])])
  assert len(plain.items[0]) == 3
  assert ruled.items[0][:2] == plain.items[0][1:]
