"""bench.serving.mmr: the MMR quality function and a tiny run on a fake pipeline run folder."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from bench.serving import bench_model
from bench.serving import mmr
from components.sequence_builder import sequences
from tests.trainer import test_rules

NUM_ITEMS = 40


def test_mmr_effect_scores_each_weight_with_ndcg_and_diversity():
  catalogue = ["a", "b", "c", "d"]
  embeddings = np.array([[1, 0], [1, 0], [0, 1], [1, 1]], np.float32)
  answers = {0.0: [["a", "b"], ["c", "a"]], 0.5: [["a", "c"], ["b", "d"]]}
  results = mmr.mmr_effect(lambda histories, weight: answers[weight], [["x"], ["y"]],
                           ["b", "c"], catalogue, embeddings,
                           [["red"], ["red", "big"], ["blue"], []], weights=(0.0, 0.5), k=2)
  assert results[0]["ndcg@2"] == pytest.approx((1 / np.log2(3) + 1) / 2)
  assert results[0]["hr@2"] == 1.0 and results[1]["hr@2"] == 0.0
  assert results[1]["ndcg@2"] == 0.0
  assert results[0]["embedding_ild@2"] == pytest.approx(0.5)   # (0 + 1) / 2
  assert results[1]["embedding_ild@2"] > results[0]["embedding_ild@2"]
  # Pairs (a, b) and (c, a); "d" has no attribute and is left out.
  assert results[0]["attribute_ild@2"] == pytest.approx((0.5 + 1.0) / 2)
  assert results[0]["attribute_cosine_ild@2"] == pytest.approx((1 - 1 / np.sqrt(2) + 1) / 2)
  assert results[1]["attribute_cosine_ild@2"] == pytest.approx(1.0)   # (a, c) only


def _fake_run(root) -> str:
  """A run folder: serving/seqrec/1 (the recommend export) and a SequenceBuilder output."""
  catalogue = test_rules._export(root / "export", NUM_ITEMS, 0)   # pylint: disable=protected-access
  tf.io.gfile.makedirs(str(root / "run" / "serving" / "seqrec"))
  tf.io.gfile.rename(catalogue["path"], str(root / "run" / "serving" / "seqrec" / "1"))
  examples = root / "run" / "tfx" / "p" / "SequenceBuilder" / "output_examples" / "3"
  ids = bench_model.item_ids(NUM_ITEMS)
  rng = np.random.default_rng(0)
  # Targets never in their history: the served list and the evaluator then rank alike.
  splits = {"test": [sequences.sequence_example(
                f"u{u}".encode(), [i.encode() for i in rng.choice(
                    [i for i in ids if i != ids[u % NUM_ITEMS]], 4, replace=False)],
                ids[u % NUM_ITEMS].encode()) for u in range(30)],
            "items": [sequences.item_example(
                item.encode(), [catalogue["values"][v].encode() for v in row], b"")
                for item, row in zip(ids, catalogue["rows"])]}
  for split, rows in splits.items():
    os.makedirs(examples / f"Split-{split}")
    with tf.io.TFRecordWriter(str(examples / f"Split-{split}" / "data.gz"), "GZIP") as w:
      for row in rows:
        w.write(row.SerializeToString())
  return str(root / "run")


def test_a_run_folder_is_measured_and_weight_zero_matches_the_evaluator(tmp_path):
  run = _fake_run(tmp_path)
  assert mmr.main(["--run-dir", run, "--weights", "0", "0.5", "-k", "5",
                   "--out-dir", str(tmp_path / "out")]) == 0
  report = json.loads((tmp_path / "out" / "mmr.json").read_text())
  assert report["users"] == 30 and report["items"] == NUM_ITEMS
  zero, half = report["results"]
  assert zero["ndcg@5"] == pytest.approx(report["evaluator"]["ndcg@5"])
  assert zero["hr@5"] == pytest.approx(report["evaluator"]["hr@5"])
  assert half["embedding_ild@5"] > zero["embedding_ild@5"]
  assert "| 0.5 |" in (tmp_path / "out" / "mmr.md").read_text()
