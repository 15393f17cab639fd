"""pipeline.refresh_catalogue: new items without retraining, removals, availability, the swap."""

import dataclasses
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from components.pusher import atomic_push as pusher
from pipeline import refresh_catalogue
from serving import contract
from serving.client import RecommenderClient
from serving.server import ModelServer
from tests import cli
from tests.trainer.text_items import clustered_vectors
from trainer import export
from trainer import inputs
from trainer.config import ALL_POSITIONS
from trainer.config import EncoderConfig
from trainer.config import RetrievalConfig
from trainer.model import INPUTS
from trainer.model import LABELS
from trainer.retrieval import RetrievalModel

CLUSTERS, PER_CLUSTER, L = 4, 6, 6
CONFIG = EncoderConfig(max_seq_len=L, embedding_dim=16, num_blocks=1, num_heads=1, ff_dim=16,
                       dropout=0.0, attention="causal", item_representation="id+text",
                       adaptor_experts=2, adaptor_dropout=0.0)
VECTORS = clustered_vectors(CLUSTERS, PER_CLUSTER)
# The last item of each cluster is never trained on: the refresh adds it.
COLD = [c * PER_CLUSTER + PER_CLUSTER - 1 for c in range(CLUSTERS)]
WARM = [j for j in range(CLUSTERS * PER_CLUSTER) if j not in COLD]
ITEM = [f"item{j}" for j in range(CLUSTERS * PER_CLUSTER)]


def _batch(seed: int):
  """Histories inside one cluster (warm items), as vocabulary indices of the warm catalogue."""
  rng = np.random.default_rng(seed)
  sequences = []
  for _ in range(64):
    cluster = rng.integers(CLUSTERS)
    warm = cluster * (PER_CLUSTER - 1) + np.arange(PER_CLUSTER - 1)
    sequences.append(list(rng.choice(warm, size=rng.integers(3, L + 2))))
  history = tf.ragged.constant([s[:-1] for s in sequences], dtype=tf.int64)
  target = tf.constant([s[-1] for s in sequences], tf.int64)
  x, y = inputs.batch_training_pairs(history, target, len(WARM), L)
  return {INPUTS: x, LABELS: y}


def _export(model, representation_ids, folder) -> str:
  vocab = folder / "vocab.txt"
  vocab.write_text("".join(f"{ITEM[j]}\n" for j in representation_ids))
  module = export.RecommenderModule(
      model, export.HashTableItemVocabulary(str(vocab), len(representation_ids)), L)
  return export.save_module(module, str(folder / "model"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A text model (id+text) trained on the warm items only, and an id-only one: SavedModels."""
  folder = tmp_path_factory.mktemp("trained")
  tf.keras.utils.set_random_seed(0)
  model = RetrievalModel(len(WARM), CONFIG, RetrievalConfig(targets=ALL_POSITIONS),
                         item_vectors=VECTORS[WARM])
  model.compile(optimizer=tf.keras.optimizers.Adam(2e-2))
  for step in range(40):
    model.train_step(_batch(step % 4))
  (folder / "text").mkdir()
  (folder / "id").mkdir()
  id_model = RetrievalModel(len(WARM), dataclasses.replace(CONFIG, item_representation="id"))
  return {"text": _export(model, WARM, folder / "text"),
          "id": _export(id_model, WARM, folder / "id")}


def _serving_dir(trained_model: str, tmp_path) -> str:
  base = tmp_path / "serving" / "seqrec"
  shutil.copytree(trained_model, base / "7")
  return str(base)


def _table(tmp_path, items, text=True, name="items.csv") -> str:
  """An item table with the given item indices (title = its cluster's name)."""
  path = tmp_path / name
  header = "item_id,title" + (",text" if text else "")
  rows = [f"{ITEM[j]},cluster {j // PER_CLUSTER}" + (",x" if text else "") for j in items]
  path.write_text("\n".join([header] + rows) + "\n")
  return str(path)


def _vectors(tmp_path, items) -> str:
  path = tmp_path / "vectors.npz"
  np.savez(path, item_id=np.array([ITEM[j] for j in items]), vector=VECTORS[items])
  return str(path)


def _refresh(*args):
  """A refresh in its own process (it loads and saves a SavedModel): code, stdout, stderr."""
  result = cli.run_module("pipeline.refresh_catalogue", *args)
  return result.returncode, result.stdout.strip(), result.stderr.strip()


def _recommend(model_dir: str, history, k: int):
  loaded = tf.saved_model.load(model_dir)
  out = loaded.signatures[contract.DEFAULT_SIGNATURE](
      history=tf.constant(history), k=tf.constant(k))
  return [[i.decode() for i in row] for row in out[contract.OUTPUT_ITEM_IDS].numpy()]


def _cluster_histories():
  """Per cluster, three of its warm items."""
  return [[ITEM[c * PER_CLUSTER + i] for i in range(3)] for c in range(CLUSTERS)]


def test_an_item_absent_from_training_is_retrieved_when_its_text_matches_the_history(
    trained, tmp_path):
  base = _serving_dir(trained["text"], tmp_path)
  before = _recommend(os.path.join(base, "7"), _cluster_histories(), len(WARM))
  assert not set(ITEM[j] for j in COLD) & {i for row in before for i in row}
  code, out, err = _refresh("--serving-dir", base, "--items",
                            _table(tmp_path, range(len(ITEM))),
                            "--item-vectors", _vectors(tmp_path, COLD))
  assert code == 0, err
  assert f"-> {base}/8 " in out and "4 added, 0 changed, 0 removed" in out
  top = _recommend(os.path.join(base, "8"), _cluster_histories(), 3)
  for cluster, row in enumerate(top):
    assert ITEM[COLD[cluster]] in row, (cluster, row)


def test_the_query_tower_and_the_served_items_are_unchanged(trained, tmp_path):
  base = _serving_dir(trained["text"], tmp_path)
  code, _, err = _refresh("--serving-dir", base, "--items",
                          _table(tmp_path, range(len(ITEM))),
                          "--item-vectors", _vectors(tmp_path, range(len(ITEM))))
  assert code == 0, err
  old, new = (tf.saved_model.load(os.path.join(base, v)).signatures for v in ("7", "8"))
  history = tf.constant(_cluster_histories() + [[ITEM[0], ITEM[COLD[1]], ""]])
  np.testing.assert_allclose(new[contract.QUERY_EMBEDDING_SIGNATURE](history=history)["embedding"],
                             old[contract.QUERY_EMBEDDING_SIGNATURE](history=history)["embedding"],
                             atol=1e-6)
  old_items = old[contract.ITEM_EMBEDDINGS_SIGNATURE]()
  new_items = new[contract.ITEM_EMBEDDINGS_SIGNATURE]()
  ids = new_items[contract.OUTPUT_ITEM_IDS].numpy().astype(str).tolist()
  assert ids == [ITEM[j] for j in WARM + COLD]
  # Same text vectors: no served item counts as changed, their rows stay as trained.
  np.testing.assert_array_equal(new_items["embeddings"][:len(WARM)], old_items["embeddings"])


def test_a_refresh_is_pushed_atomically_and_the_server_swaps_to_it(trained, tmp_path,
                                                                   monkeypatch):
  base = _serving_dir(trained["text"], tmp_path)
  table = _table(tmp_path, range(len(ITEM)))
  vectors = _vectors(tmp_path, COLD)
  with ModelServer("seqrec", base, port=0, poll_seconds=0.2) as server:
    client = RecommenderClient(f"127.0.0.1:{server.port}", "seqrec")
    history = [_cluster_histories()[0]]
    assert ITEM[COLD[0]] not in _ids(client, history, 3)

    def copy_and_fail(source, target):
      os.makedirs(target)
      (open(os.path.join(target, "half-written"), "w")).close()
      raise OSError("disk full")
    with monkeypatch.context() as patch:
      patch.setattr(pusher, "_copy_tree_synced", copy_and_fail)
      with pytest.raises(OSError, match="disk full"):
        refresh_catalogue.main(["--serving-dir", base, "--items", table,
                                "--item-vectors", vectors])
    assert sorted(os.listdir(base)) == ["7"]   # no half version, no staging folder left

    code, _, err = _refresh("--serving-dir", base, "--items", table,
                            "--item-vectors", vectors)
    assert code == 0, err
    assert sorted(os.listdir(base)) == ["7", "8"]
    assert server.watcher.wait_for_version(8, timeout=60)
    assert ITEM[COLD[0]] in _ids(client, history, 3)


def _ids(client, history, k: int):
  return [item for item, _ in client.recommend(history, k)[0]]


def _all_recommended(model_dir: str):
  """Every item some history can get: k = the catalogue for each cluster and an empty history."""
  histories = _cluster_histories() + [["", "", ""]]
  return {i for row in _recommend(model_dir, histories, 100) for i in row} - {""}


def test_removed_items_never_come_back(trained, tmp_path):
  base = _serving_dir(trained["text"], tmp_path)
  gone = ITEM[WARM[-1]]
  kept = [j for j in range(len(ITEM)) if ITEM[j] != gone]
  code, out, err = _refresh("--serving-dir", base, "--items", _table(tmp_path, kept),
                            "--item-vectors", _vectors(tmp_path, COLD))
  assert code == 0, err
  assert "1 removed" in out
  assert gone not in _all_recommended(os.path.join(base, "8"))
  # A later refresh, with an availability file that lists it as in stock.
  stock = tmp_path / "stock.csv"
  stock.write_text(f"item_id,available\n{gone},1\n")
  code, out, err = _refresh("--serving-dir", base, "--items", _table(tmp_path, kept),
                            "--availability", stock)
  assert code == 0, err
  assert gone not in _all_recommended(os.path.join(base, "9"))
  assert ITEM[COLD[0]] in _all_recommended(os.path.join(base, "9"))


def test_unavailable_items_are_not_served_until_they_are_back(trained, tmp_path):
  base = _serving_dir(trained["text"], tmp_path)
  table = _table(tmp_path, WARM)
  out_of_stock = {ITEM[WARM[0]], ITEM[WARM[5]]}
  stock = tmp_path / "stock.csv"
  stock.write_text("item_id,available\n" + "".join(f"{i},0\n" for i in out_of_stock))
  code, out, err = _refresh("--serving-dir", base, "--items", table,
                            "--availability", stock)
  assert code == 0, err
  assert "2 unavailable" in out
  assert not out_of_stock & _all_recommended(os.path.join(base, "8"))
  # Not listed again: still out of stock.
  code, _, err = _refresh("--serving-dir", base, "--items", table)
  assert code == 0, err
  assert not out_of_stock & _all_recommended(os.path.join(base, "9"))
  stock.write_text("item_id,available\n" + "".join(f"{i},yes\n" for i in out_of_stock))
  code, _, err = _refresh("--serving-dir", base, "--items", table,
                          "--availability", stock)
  assert code == 0, err
  assert out_of_stock <= _all_recommended(os.path.join(base, "10"))


def test_the_local_server_never_falls_back_to_an_unavailable_item(trained, tmp_path):
  base = _serving_dir(trained["text"], tmp_path)
  table = tmp_path / "items.csv"
  table.write_text("item_id,available\n" + "".join(f"{ITEM[j]},{int(j != WARM[0])}\n"
                                                     for j in WARM))
  code, _, err = _refresh("--serving-dir", base, "--items", table)
  assert code == 0, err
  with ModelServer("seqrec", base, port=0) as server:
    client = RecommenderClient(f"127.0.0.1:{server.port}", "seqrec")
    answer = _ids(client, [["never-seen"]], len(WARM))
  assert answer == [ITEM[j] for j in WARM[1:]]   # the popularity order, without it


@pytest.mark.parametrize("header,rows", [("item_id", ""), ("item_id,title,text", ",,")])
def test_new_items_without_text_get_a_one_line_message(trained, tmp_path, capsys, header, rows):
  base = _serving_dir(trained["text"], tmp_path)
  table = tmp_path / "items.csv"
  table.write_text(header + "\n" + "".join(f"{ITEM[j]}{rows}\n" for j in range(len(ITEM))))
  code = refresh_catalogue.main(["--serving-dir", base, "--items", str(table), "--embed"])
  out, err = (text.strip() for text in capsys.readouterr())
  assert code == 1 and out == ""
  assert len(err.splitlines()) == 1
  assert err.startswith(f"error: item table {table} (new items)")
  assert f"4 of 4 items have no text, first item_id '{ITEM[COLD[0]]}'" in err
  assert sorted(os.listdir(base)) == ["7"]


def test_an_id_only_model_applies_removals_and_says_new_items_need_text(trained, tmp_path):
  base = _serving_dir(trained["id"], tmp_path)
  kept = [j for j in range(len(ITEM)) if j != WARM[0]]
  code, out, err = _refresh("--serving-dir", base, "--items", _table(tmp_path, kept),
                            "--embed")
  assert code == 0, err
  lines = out.splitlines()
  assert "0 added, 0 changed, 1 removed" in lines[0]
  assert lines[1].startswith("4 new items not added") and "item_representation" in lines[1]
  assert ITEM[WARM[0]] not in _all_recommended(os.path.join(base, "8"))


def test_rules_see_the_refreshed_items_attributes(trained, tmp_path):
  base = _serving_dir(trained["text"], tmp_path)
  table = tmp_path / "items.csv"
  rows = [f"{ITEM[j]},cluster {j // PER_CLUSTER},x,{'new' if j in COLD else 'old'}"
          for j in range(len(ITEM))]
  table.write_text("\n".join(["item_id,title,text,attributes"] + rows) + "\n")
  code, _, err = _refresh("--serving-dir", base, "--items", table,
                          "--item-vectors", _vectors(tmp_path, COLD))
  assert code == 0, err
  loaded = tf.saved_model.load(os.path.join(base, "8"))
  histories = _cluster_histories()
  batch = len(histories)
  none = tf.constant([[""]] * batch)
  out = loaded.signatures[contract.RULES_SIGNATURE](
      history=tf.constant(histories), k=tf.constant(len(ITEM)), exclude_ids=none,
      allow_ids=none, require_attributes=tf.constant([["new"]] * batch),
      exclude_attributes=none, keep_history=tf.constant(False), diversity=tf.constant(0.0))
  for row in out[contract.OUTPUT_ITEM_IDS].numpy():
    assert sorted(i.decode() for i in row if i) == sorted(ITEM[j] for j in COLD)
  np.testing.assert_array_equal(out[contract.OUTPUT_NUM_UNKNOWN_RULES].numpy(), 0)
