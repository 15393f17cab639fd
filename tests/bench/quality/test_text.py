"""The item-text and transfer benchmarks: dataset loaders, user sampler, baselines, tables."""

import json

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from bench.quality import data as data_lib
from bench.quality import run
from bench.quality import text
from bench.quality import transfer
from pipeline.ingest import formats
from tests.pipeline.ingest.test_unisrec import _tiny as tiny_unisrec
from trainer import features
from trainer import item_vectors


def _ml_latest(folder):
  folder.mkdir()
  (folder / "ratings.csv").write_text(
      "userId,movieId,rating,timestamp\n1,10,4.0,3\n1,20,3.5,1\n1,30,5.0,2\n1,40,1.0,4\n"
      "2,20,2.0,1\n2,30,3.0,2\n2,40,4.0,2\n")
  (folder / "movies.csv").write_text(
      'movieId,title,genres\n10,"Heat, The (1995)",Action\n20,Toy Story (1995),Animation\n'
      "30,Up (2009),Animation|Comedy\n40,Alien (1979),Horror\n")
  (folder / "tags.csv").write_text("userId,movieId,tag,timestamp\n1,30,balloons,5\n")
  return folder


def test_text_datasets_load_through_their_adapters(tmp_path, monkeypatch):
  assert data_lib.DATASETS["ml-latest-small"][0] == formats.ML_LATEST
  assert data_lib.DATASETS["scientific"][0] == formats.UNISREC
  monkeypatch.setitem(data_lib.DATASETS, "ml-latest-small",
                      (formats.ML_LATEST, str(_ml_latest(tmp_path / "mls"))))
  data = data_lib.prepare("ml-latest-small", str(tmp_path / "w1"))
  # Time order, ties (user 2: 30 and 40 at t=2) by item id.
  vocab = data.item_ids
  assert [vocab[i] for i in data.histories["test"][0]] == ["20", "30", "10"]
  assert vocab[data.targets["test"][0]] == "40"
  assert [vocab[i] for i in data.histories["test"][1]] == ["20", "30"]
  assert sorted(vocab) == ["10", "20", "30", "40"]
  (tmp_path / "sci").mkdir()
  monkeypatch.setitem(data_lib.DATASETS, "scientific",
                      (formats.UNISREC, str(tiny_unisrec(tmp_path / "sci"))))
  data = data_lib.prepare("scientific", str(tmp_path / "w2"))
  vocab = data.item_ids
  assert data.num_users == 2 and data.num_items == 5
  assert [vocab[i] for i in data.histories["test"][0]] == ["A0", "A1", "A2", "A3"]
  assert vocab[data.targets["test"][0]] == "A4"
  with pytest.raises(FileNotFoundError, match="dataset folder"):
    data_lib.dataset_folder("scientific", str(tmp_path / "missing"))


def _users_data(tmp_path, users=40):
  folder = tmp_path / "many"
  folder.mkdir()
  lines = [f"{u} " + " ".join(str(100 + (u * 7 + j) % 13) for j in range(3 + u % 5))
           for u in range(1, users + 1)]
  (folder / "Many.txt").write_text("\n".join(lines) + "\n")
  (folder / "Many_item2attributes.json").write_text("{}")
  return folder


def _read_train(path):
  dataset = tf.data.TFRecordDataset(path, compression_type="GZIP")
  rows = [tf.io.parse_single_example(r, data_lib.SPEC) for r in dataset]
  return [(tf.sparse.to_dense(r[features.HISTORY_IDS]).numpy().tolist(),
           int(r[features.TARGET_ID])) for r in rows]


def test_user_sampler_is_seeded_and_keeps_evaluation_users_whole(tmp_path, monkeypatch):
  monkeypatch.setitem(data_lib.DATASETS, "many", ("s3rec", str(_users_data(tmp_path))))
  data = data_lib.prepare("many", str(tmp_path / "work"))
  assert data.num_users == 40
  a = data_lib.sample_training_users(data, 0.25, 1, str(tmp_path / "a"))
  again = data_lib.sample_training_users(data, 0.25, 1, str(tmp_path / "b"))
  other = data_lib.sample_training_users(data, 0.25, 2, str(tmp_path / "c"))
  assert len(a.targets["train"]) == 10
  assert a.targets["train"].tolist() == again.targets["train"].tolist()
  assert a.histories["train"] != other.histories["train"]
  # Every user is still validated and tested, on the same files.
  for split in ("eval", "test"):
    assert a.files[split] == data.files[split]
    assert a.targets[split].tolist() == data.targets[split].tolist()
    assert a.histories[split] == data.histories[split]
  # The training file holds exactly the sampled users' rows, which are rows of the full split.
  rows = _read_train(a.files["train"])
  assert rows == list(zip(a.histories["train"], a.targets["train"].tolist()))
  full = set((tuple(h), int(t)) for h, t in zip(data.histories["train"], data.targets["train"]))
  assert {(tuple(h), t) for h, t in rows} <= full
  assert a.train_labels == sum(len(h) for h in a.histories["train"])
  whole = data_lib.sample_training_users(data, 1.0, 1, str(tmp_path / "d"))
  assert sorted(map(tuple, whole.histories["train"])) == sorted(map(tuple,
                                                                    data.histories["train"]))
  assert whole.train_labels == data.train_labels
  assert len(data_lib.sample_training_users(data, 0.001, 1, str(tmp_path / "e"))
             .targets["train"]) == 1
  with pytest.raises(ValueError, match="fraction"):
    data_lib.sample_training_users(data, 0.0, 1, str(tmp_path / "f"))


def test_baselines_rank_by_text_similarity_and_popularity(tmp_path, monkeypatch):
  folder = tmp_path / "toy"
  folder.mkdir()
  # 1x items lean to the first axis, 2x to the second; each test target is the candidate
  # (history excluded) closest to the mean of the user's history.
  (folder / "Toy.txt").write_text("1 20 21 10 22\n2 10 11 20 12\n3 10 11 12 20\n")
  (folder / "Toy_item2attributes.json").write_text("{}")
  monkeypatch.setitem(data_lib.DATASETS, "toy", ("s3rec", str(folder)))
  data = data_lib.prepare("toy", str(tmp_path / "work"))
  vectors = {"10": [1.0, 0.0], "11": [0.9, 0.1], "12": [0.8, 0.2], "20": [0.2, 0.8],
             "21": [0.0, 1.0], "22": [0.05, 0.95]}
  path = item_vectors.write_vectors(item_vectors.ItemVectors(
      list(vectors), np.asarray(list(vectors.values()), np.float32), "test"),
      str(tmp_path / "vec"))
  result = text.baselines(data, path)
  assert set(result) == {"text_similarity", "popularity"}
  assert result["text_similarity"]["NDCG@10"] == 1.0
  assert "cold_start:cold_items NDCG@10" in result["text_similarity"]
  # Popularity scores training counts; 6 items, 3 excluded: every target in the top 10.
  assert result["popularity"]["HR@10"] == 1.0 and result["popularity"]["NDCG@10"] < 1.0


def _row(ndcg, cold, warm, seeds=(1, 2, 3)):
  stat = lambda v: {"mean": v, "std": 0.01}  # noqa: E731
  return {"seeds": list(seeds), "HR@10": stat(2 * ndcg), "NDCG@10": stat(ndcg),
          f"{text.COLD} HR@10": stat(2 * cold), f"{text.COLD} NDCG@10": stat(cold),
          f"{text.WARM} HR@10": stat(2 * warm), f"{text.WARM} NDCG@10": stat(warm),
          "median_epoch_seconds": 3.0, "best_epoch": 9, "epochs_to_95": 5}


def test_bars_and_table():
  entry = {"num_users": 10, "num_items": 20, "num_cold_test_users": 2,
           "load_average": {"start": "4.00 3.00 2.00", "end": "5.00 4.00 3.00"},
           "embed": {"seconds": 12.3, "summary": "20 items"},
           "rows": {"id": _row(0.10, 0.0, 0.10), "text": _row(0.09, 0.05, 0.099),
                    "id+text": _row(0.10, 0.01, 0.095, seeds=(1,))},
           "baselines": {"text_similarity": {"HR@10": 0.1, "NDCG@10": 0.05,
                                             f"{text.COLD} HR@10": 0.04,
                                             f"{text.COLD} NDCG@10": 0.02,
                                             f"{text.WARM} HR@10": 0.1,
                                             f"{text.WARM} NDCG@10": 0.05}}}
  entry["bars"] = text.bars(entry)
  assert entry["bars"]["text"] == {"beats_text_similarity_on_cold": True,
                                   "warm_within_2pct_of_id": True,
                                   "cold_at_least_half_warm": True}
  assert entry["bars"]["id+text"]["beats_text_similarity_on_cold"] is False
  assert entry["bars"]["id+text"]["warm_within_2pct_of_id"] is False   # 0.095 < 0.098
  result = {"meta": {"commit": "abc", "machine": {"cpu": "cpu", "cores": 2},
                     "load_average": "3.00 2.00 1.00", "shared": "yes", "date": "d",
                     "cold_item_fraction": 0.1, "cold_item_seed": 0},
            "datasets": {"scientific": entry}}
  table = text.markdown(result)
  assert "load average 3.00 2.00 1.00 (shared cores: yes)" in table
  assert "| text | 3 | 0.1800 ± 0.0100 | 0.0900 ± 0.0100 | 0.1000 ± 0.0100 |" in table
  assert "| id+text | 1 | 0.2000 | 0.1000 |" in table
  assert "| text-similarity baseline | – | 0.1000 | 0.0500 | 0.0400 | 0.0200 |" in table
  assert "Recformer (KDD 2023), published, own Scientific preprocessing | | 0.1448 | 0.1027 |" in table
  assert "- **id+text**: cold NDCG@10 beats text similarity: NOT met" in table
  assert "12 s wall (shared cores" in table
  assert "load average 4.00 3.00 2.00 at the start" in table


def test_row_arguments_reach_the_quality_benchmark(tmp_path):
  args = text.parse_args(["--out-dir", str(tmp_path), "--finetune-epochs", "7"])
  argv = text.row_argv(args, "ml-100k", "id+text", 3, "v.parquet")
  parsed = run.parse_args(argv)
  assert parsed.item_vectors == "v.parquet" and parsed.cold_item_fraction == 0.1
  assert run.load_model_config(parsed.model_config).encoder.item_representation == "id+text"
  assert "--item-vectors" not in text.row_argv(args, "ml-100k", "id", 3, "v.parquet")
  # The text options reach the child and the settings key.
  child = run._child_argv(parsed, "finetune_only", 1, "r.json")  # pylint: disable=protected-access
  assert child[child.index("--item-vectors") + 1] == "v.parquet"
  sampled = run.parse_args(argv + ["--train-user-fraction", "0.25", "--warm-start-from", "m"])
  key = run._settings_key  # pylint: disable=protected-access
  assert key(parsed, "finetune_only") != key(sampled, "finetune_only")
  assert run._text_argv(run.parse_args(["--dataset", "beauty"])) == []  # pylint: disable=protected-access


def test_transfer_table():
  rows = {f"{s} {f:g}": {"start": s, "fraction": f, **_row(0.05 + f / 10, 0, 0)}
          for f in transfer.FRACTIONS for s in transfer.STARTS}
  result = {"meta": {"source": "ml-latest-small", "target": "ml-100k", "commit": "abc",
                     "machine": {"cpu": "cpu", "cores": 2}, "load_average": "1.00",
                     "shared": "yes", "date": "d"},
            "source": _row(0.07, 0, 0), "rows": rows}
  table = transfer.markdown(result)
  assert "| transferred | 10% | 3 | 0.1200 ± 0.0100 | 0.0600 ± 0.0100 | 9 | 5 | 3.0 |" in table
  assert "| scratch | 100% |" in table
  assert "NDCG@10 0.0700" in table


def test_per_dataset_overrides():
  args = text.parse_args(["--epochs-per-dataset", "ml-100k=6", "--patience-per-dataset",
                          "ml-100k=2", "--finetune-epochs", "30"])
  ml = run.parse_args(text.row_argv(args, "ml-100k", "id", 1, "v"))
  sci = run.parse_args(text.row_argv(args, "scientific", "id", 1, "v"))
  assert (ml.finetune_epochs, ml.patience) == (6, 2)
  assert (sci.finetune_epochs, sci.patience) == (30, 5)


def test_one_pass_rows_train_causally_on_every_position(tmp_path):
  args = text.parse_args(["--out-dir", str(tmp_path)])
  ml = run.parse_args(text.row_argv(args, "ml-100k", "text", 1, "v"))
  sci = run.parse_args(text.row_argv(args, "scientific", "text", 1, "v"))
  assert run.load_model_config(ml.model_config).encoder.attention == "causal"
  assert json.loads(ml.retrieval_config) == {"targets": "all_positions"}
  assert run.load_model_config(sci.model_config).encoder.attention == "bidirectional"
  assert sci.retrieval_config == run.DEFAULT_RETRIEVAL_CONFIG
  assert ml.model_config != sci.model_config


def test_text_row_options_reach_text_rows_only(tmp_path):
  args = text.parse_args(["--out-dir", str(tmp_path), "--text-encoder-options",
                          '{"id_dropout": 0.5}', "--text-retrieval-options",
                          '{"normalize_embeddings": true, "temperature": 0.07}'])
  plain = run.parse_args(text.row_argv(text.parse_args(["--out-dir", str(tmp_path)]),
                                       "ml-100k", "id+text", 1, "v"))
  rows = {row: run.parse_args(text.row_argv(args, "ml-100k", row, 1, "v"))
          for row in ("id", "id+text")}
  assert run.load_model_config(rows["id+text"].model_config).encoder.id_dropout == 0.5
  assert json.loads(rows["id+text"].retrieval_config) == {
      "targets": "all_positions", "normalize_embeddings": True, "temperature": 0.07}
  assert rows["id+text"].model_config != plain.model_config   # parallel runs keep apart
  assert run.load_model_config(rows["id"].model_config).encoder.id_dropout == 0.0
  assert json.loads(rows["id"].retrieval_config) == {"targets": "all_positions"}


def test_refreshed_rows_zero_the_held_out_id_embeddings_only(tmp_path):
  from trainer.config import EncoderConfig
  from trainer.encoder import SequenceEncoder
  vectors = np.random.default_rng(0).normal(size=(5, 8)).astype(np.float32)
  encoder = SequenceEncoder(5, EncoderConfig(embedding_dim=4, max_seq_len=4, num_heads=1,
                                             item_representation="id+text"), vectors)
  encoder(tf.zeros([1, 4], tf.int64))
  before = encoder.item_table.embeddings.numpy().copy()
  text_only = encoder.item_text(tf.range(1, 6)).numpy()
  run.zero_id_rows(encoder, {1, 3})
  after = encoder.item_table.embeddings.numpy()
  assert not after[[2, 4]].any()                       # model ids of indices 1 and 3
  np.testing.assert_array_equal(after[[0, 1, 3, 5, 6]], before[[0, 1, 3, 5, 6]])
  np.testing.assert_allclose(encoder.item_embeddings.numpy()[[1, 3]], text_only[[1, 3]],
                             rtol=1e-6)
  args = text.parse_args(["--out-dir", str(tmp_path)])
  parsed = run.parse_args(text.row_argv(args, "scientific", "id+text-refreshed", 1, "v"))
  assert parsed.zero_cold_ids and parsed.out_dir.endswith("id_text-refreshed")
  plain = run.parse_args(text.row_argv(args, "scientific", "id+text", 1, "v"))
  key = run._settings_key  # pylint: disable=protected-access
  assert key(parsed, "finetune_only") != key(plain, "finetune_only")


def test_both_benchmarks_record_their_meta():
  meta = transfer.parse_args([])
  assert {"commit", "machine", "load_average", "shared"} <= set(text.meta(meta))
