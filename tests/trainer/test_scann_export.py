"""trainer.scann_export: the ScaNN SavedModel variant, loaded in-process and by the server."""

import json
import os
import subprocess
import sys

import grpc
import numpy as np
import pytest
import tensorflow as tf

pytest.importorskip("scann", reason="the ScaNN variant needs the scann package (the 'ann' extra)")

from bench.serving import bench_model  # pylint: disable=g-import-not-at-top,wrong-import-position
from serving import contract  # pylint: disable=g-import-not-at-top,wrong-import-position
from trainer import scann_export  # pylint: disable=g-import-not-at-top,wrong-import-position
from serving import servable as servable_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from serving import testing  # pylint: disable=g-import-not-at-top,wrong-import-position
from serving.testing import toy_model  # pylint: disable=g-import-not-at-top,wrong-import-position
from trainer.config import EncoderConfig  # pylint: disable=g-import-not-at-top,wrong-import-position

NUM_ITEMS = 400
CONFIG = EncoderConfig(embedding_dim=16, ff_dim=16, max_seq_len=8)
# Every leaf searched and 100 candidates reordered by exact dot product: on 400
# items the variant must then return exactly what brute force returns.
SCANN = scann_export.ScannConfig(num_leaves=8, num_leaves_to_search=8,
                                 num_reordering_candidates=100)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
  root = tmp_path_factory.mktemp("scann")
  model = bench_model.build_model(NUM_ITEMS, CONFIG, seed=5, items_per_cluster=40)
  exact = bench_model.export_bench_model(str(root / "exact"), NUM_ITEMS, model=model)
  vocabulary = bench_model.vocabulary(NUM_ITEMS, str(root / "vocab"))
  scann = scann_export.export_scann_variant(model, vocabulary, CONFIG.max_seq_len,
                                            str(root / "serving"), 1, SCANN)
  return {"root": root, "model": model, "vocabulary": vocabulary, "exact": exact,
          "scann": scann}


def _history(rows):
  width = max(len(r) for r in rows)
  return np.array([[i.encode() for i in r] + [b""] * (width - len(r)) for r in rows],
                  dtype=object)


ROWS = [
    ["item_3", "", "item_77", "unknown-id"],
    [f"item_{i}" for i in range(100, 130)],     # 30 items: more than k and max_seq_len
    ["item_399"],
]


def test_variant_is_written_under_its_own_model_name(exports):
  assert exports["scann"] == os.path.join(str(exports["root"]), "serving",
                                          scann_export.SCANN_MODEL_NAME, "1")
  assert os.listdir(os.path.dirname(exports["scann"])) == ["1"]   # no staging left
  with pytest.raises(FileExistsError):
    scann_export.export_scann_variant(exports["model"], exports["vocabulary"],
                                      CONFIG.max_seq_len, str(exports["root"] / "serving"), 1,
                                      SCANN)


def test_variant_graph_uses_scann_and_the_default_export_does_not(exports):
  assert servable_lib.scann_ops_used(servable_lib.read_meta_graph(exports["scann"])) == [
      "Scann>ScannSearchBatched", "Scann>TensorsToScann"]
  ops = servable_lib.op_types(servable_lib.read_meta_graph(exports["exact"]))
  assert not [op for op in ops if op.startswith("Scann")]


def test_server_servable_loads_the_variant_with_the_contract_outputs(exports):
  servable = servable_lib.Servable(exports["scann"], 1)
  assert set(servable.signature_defs) >= set(servable_lib.REQUIRED_SIGNATURES)
  assert servable.outputs_of(contract.DEFAULT_SIGNATURE) == [
      contract.OUTPUT_ITEM_IDS, contract.OUTPUT_NUM_UNKNOWN, contract.OUTPUT_SCORES]
  outputs = servable.run(contract.DEFAULT_SIGNATURE, {
      contract.INPUT_HISTORY: _history(ROWS), contract.INPUT_K: np.array(10, np.int32)})
  ids, scores = outputs[contract.OUTPUT_ITEM_IDS], outputs[contract.OUTPUT_SCORES]
  assert ids.shape == scores.shape == (3, 10) and scores.dtype == np.float32
  assert outputs[contract.OUTPUT_NUM_UNKNOWN].tolist() == [1, 0, 0]
  for row, id_row, score_row in zip(ROWS, ids, scores):
    assert not {i.encode() for i in row} & set(id_row.tolist())   # history excluded
    assert all(id_row) and np.all(np.diff(score_row) <= 0)
  assert servable.num_items == NUM_ITEMS
  query = servable.run(contract.QUERY_EMBEDDING_SIGNATURE,
                       {contract.INPUT_HISTORY: _history(ROWS)})[contract.OUTPUT_EMBEDDING]
  assert query.shape == (3, CONFIG.embedding_dim)


def test_searching_every_leaf_gives_the_exact_top_k(exports):
  scann = tf.saved_model.load(exports["scann"]).signatures[contract.DEFAULT_SIGNATURE]
  exact = tf.saved_model.load(exports["exact"]).signatures[contract.DEFAULT_SIGNATURE]
  history = tf.constant(_history(ROWS), tf.string)
  got = scann(history=history, k=tf.constant(10))
  want = exact(history=history, k=tf.constant(10))
  np.testing.assert_array_equal(got[contract.OUTPUT_ITEM_IDS], want[contract.OUTPUT_ITEM_IDS])
  np.testing.assert_allclose(got[contract.OUTPUT_SCORES], want[contract.OUTPUT_SCORES],
                             rtol=1e-5, atol=1e-5)


def test_history_is_excluded_even_when_it_holds_the_best_items(exports):
  scann = tf.saved_model.load(exports["scann"]).signatures[contract.DEFAULT_SIGNATURE]
  history = ["item_1", "item_2"]
  best = scann(history=tf.constant([history]), k=tf.constant(40))[contract.OUTPUT_ITEM_IDS]
  # Add the 20 best items to the history: the next ones move up and none comes back.
  longer = history + [i.decode() for i in best.numpy()[0, :20]]
  out = scann(history=tf.constant([longer]), k=tf.constant(10))
  ids = [i.decode() for i in out[contract.OUTPUT_ITEM_IDS].numpy()[0]]
  assert len(ids) == 10 and all(ids) and not set(ids) & set(longer)


def test_k_beyond_the_reordering_candidates_leaves_empty_slots(exports):
  scann = tf.saved_model.load(exports["scann"]).signatures[contract.DEFAULT_SIGNATURE]
  out = scann(history=tf.constant([["item_1", "item_2"]]), k=tf.constant(NUM_ITEMS))
  ids, scores = out[contract.OUTPUT_ITEM_IDS].numpy()[0], out[contract.OUTPUT_SCORES].numpy()[0]
  assert ids.shape == (NUM_ITEMS,)
  found = int(np.isfinite(scores).sum())
  assert SCANN.num_reordering_candidates - 2 <= found <= SCANN.num_reordering_candidates
  assert set(ids[found:].tolist()) == {b""} and np.all(np.isneginf(scores[found:]))
  assert not {b"item_1", b"item_2"} & set(ids.tolist())


def test_missing_scann_package_is_a_clear_load_error(exports, monkeypatch):
  monkeypatch.setitem(sys.modules, servable_lib.SCANN_OPS_MODULE, None)
  with pytest.raises(servable_lib.LoadError) as error:
    servable_lib.load_scann_ops(exports["scann"], ["Scann>ScannSearchBatched"])
  assert error.value.code == grpc.StatusCode.FAILED_PRECONDITION
  assert "ScaNN-enabled TF Serving" in error.value.message


_FRESH_PROCESS = """
import json, sys
import numpy as np
from serving import contract, servable
toy = servable.Servable(sys.argv[1], 1)
after_default = "scann" in sys.modules
variant = servable.Servable(sys.argv[2], 1)
out = variant.run(contract.DEFAULT_SIGNATURE, {
    contract.INPUT_HISTORY: np.array([[b"item_3", b"item_4"]], dtype=object),
    contract.INPUT_K: np.array(5, np.int32)})
print(json.dumps({"scann_after_default": after_default,
                  "scann_ops_loaded": "scann.scann_ops.py.scann_ops" in sys.modules,
                  "ids": [i.decode() for i in out[contract.OUTPUT_ITEM_IDS][0]]}))
"""


def test_a_fresh_server_process_imports_scann_only_for_the_variant(exports, tmp_path):
  toy = toy_model.export_toy_model(str(tmp_path / "toy"), 20)
  result = subprocess.run(
      [sys.executable, "-c", _FRESH_PROCESS, toy, exports["scann"]], capture_output=True,
      text=True, timeout=180, cwd=testing.REPO_ROOT,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert report["scann_after_default"] is False
  assert report["scann_ops_loaded"] is True
  assert len(report["ids"]) == 5 and not {"item_3", "item_4"} & set(report["ids"])
